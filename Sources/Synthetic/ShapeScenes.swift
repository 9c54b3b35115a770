/// A synthetic, captioned image set: coloured shapes of two sizes in five positions on a light
/// background, with captions such as "a small red circle on the left". Some colour–shape
/// combinations are held out of training, so zero-shot accuracy on them measures whether a
/// model learned colour and shape as separate concepts.
public struct ShapeScene: Sendable, Hashable {
    public enum Shape: String, CaseIterable, Sendable { case circle, square, triangle, cross }
    public enum Colour: String, CaseIterable, Sendable { case red, green, blue, yellow, purple, orange }
    public enum Size: String, CaseIterable, Sendable { case small, large }
    public enum Position: String, CaseIterable, Sendable { case left, right, top, bottom, center }

    public let shape: Shape
    public let colour: Colour
    public let size: Size
    public let position: Position

    public init(shape: Shape, colour: Colour, size: Size, position: Position) {
        self.shape = shape
        self.colour = colour
        self.size = size
        self.position = position
    }

    public var caption: String {
        "a \(size.rawValue) \(colour.rawValue) \(shape.rawValue) \(placePhrase)"
    }

    /// Where the shape is, as the captions say it ("on the left").
    public var placePhrase: String {
        switch position {
        case .left: "on the left"
        case .right: "on the right"
        case .top: "at the top"
        case .bottom: "at the bottom"
        case .center: "in the center"
        }
    }

    public static let rgb: [Colour: (UInt8, UInt8, UInt8)] = [
        .red: (220, 30, 30), .green: (30, 170, 50), .blue: (30, 60, 220),
        .yellow: (235, 210, 30), .purple: (140, 40, 180), .orange: (245, 140, 20),
    ]

    /// Held-out combinations: each colour misses one shape in training, each shape misses
    /// one or two colours, so every colour and every shape is still seen.
    public var isHeldOut: Bool {
        let c = Colour.allCases.firstIndex(of: colour)!, s = Shape.allCases.firstIndex(of: shape)!
        return s == c % Shape.allCases.count
    }

    /// Every scene, in a fixed order.
    public static var all: [ShapeScene] {
        var out: [ShapeScene] = []
        for shape in Shape.allCases { for colour in Colour.allCases { for size in Size.allCases { for position in Position.allCases {
            out.append(ShapeScene(shape: shape, colour: colour, size: size, position: position))
        } } } }
        return out
    }

    /// Shorter descriptions of the same scene, each leaving out some attributes: training on
    /// them teaches the text tower each word on its own ("a circle", "a red shape"), which is
    /// what zero-shot prompts for one attribute ask about.
    public var partialCaptions: [String] {
        let place = placePhrase
        let (size, colour, shape) = (self.size.rawValue, self.colour.rawValue, self.shape.rawValue)
        return [
            "a \(colour) \(shape)",
            "a \(size) \(colour) \(shape)",
            "a \(colour) \(shape) \(place)",
            "a \(shape)",
            "a \(size) \(shape)",
            "a \(shape) \(place)",
            "a \(colour) shape",
            "a \(size) \(colour) shape",
            "a \(colour) shape \(place)",
        ]
    }

    /// Inks outside the six named colours (black, greys, teals, browns): shapes drawn in them,
    /// captioned without a colour, show the shapes in more colours than the training
    /// combinations do, without ever showing a held-out combination.
    public static let neutralInks: [(UInt8, UInt8, UInt8)] = [
        (35, 35, 35), (90, 90, 90), (145, 145, 145), (20, 150, 150), (15, 100, 110), (125, 80, 40), (85, 55, 35),
    ]

    /// Captions that leave the colour out (for shapes drawn in a neutral ink).
    public var colourFreeCaptions: [String] {
        ["a \(size.rawValue) \(shape.rawValue) \(placePhrase)", "a \(shape.rawValue)", "a \(size.rawValue) \(shape.rawValue)", "a \(shape.rawValue) \(placePhrase)"]
    }

    /// Renders the scene as RGB bytes [side, side, 3], with a small deterministic jitter of
    /// position, size and background tint (and pixel noise with `grainy`) from `variant`. Edges are
    /// anti-aliased (4x4 samples per pixel) so that shapes keep their outline when resized.
    /// With `ink`, the shape is drawn in that RGB colour instead of the scene's.
    /// With `grainy`, each pixel of the paper gets a little noise (as the demo model's
    /// training data and `clipd synth` do).
    public func render(side: Int, variant: UInt64 = 0, ink: (UInt8, UInt8, UInt8)? = nil, grainy: Bool = false) -> [UInt8] {
        var rng = variant &* 0x9E37_79B9_7F4A_7C15 &+ 0x2545_F491_4F6C_DD1D
        func next() -> UInt64 {
            rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17
            return rng
        }
        func jitter(_ range: Double) -> Double {
            (Double(next() % 10_000) / 10_000 - 0.5) * 2 * range
        }
        let s = Double(side)
        let background = (235.0 + jitter(15), 235.0 + jitter(8), 235.0 + jitter(8))
        let noise = 3.0 + abs(jitter(5))
        let radius = (size == .small ? 0.17 : 0.27) * s * (1 + jitter(0.1))
        var (cx, cy) = (0.5 * s, 0.5 * s)
        switch position {
        case .left: cx = 0.3 * s
        case .right: cx = 0.7 * s
        case .top: cy = 0.3 * s
        case .bottom: cy = 0.7 * s
        case .center: break
        }
        cx += jitter(0.04 * s); cy += jitter(0.04 * s)
        let (r, g, b) = ink ?? Self.rgb[colour]!
        let shade = 1 + jitter(0.08)
        let fill = (Double(r) * shade, Double(g) * shade, Double(b) * shade)
        func inside(_ dx: Double, _ dy: Double) -> Bool {
            switch shape {
            case .circle: return dx * dx + dy * dy <= radius * radius
            case .square: return abs(dx) <= radius * 0.85 && abs(dy) <= radius * 0.85
            case .triangle:
                // Upward triangle: apex at top, base at bottom.
                let t = (dy + radius) / (2 * radius)
                return dy >= -radius && dy <= radius && abs(dx) <= t * radius
            case .cross: return (abs(dx) <= radius * 0.3 && abs(dy) <= radius) || (abs(dy) <= radius * 0.3 && abs(dx) <= radius)
            }
        }
        let samples = 4
        var pixels = [UInt8](repeating: 0, count: side * side * 3)
        for y in 0..<side {
            for x in 0..<side {
                var coverage = 0.0
                let dx0 = Double(x) - cx, dy0 = Double(y) - cy
                if abs(dx0) <= radius + 1.5, abs(dy0) <= radius + 1.5 {
                    var hits = 0
                    for sy in 0..<samples {
                        for sx in 0..<samples where inside(dx0 + (Double(sx) + 0.5) / Double(samples), dy0 + (Double(sy) + 0.5) / Double(samples)) {
                            hits += 1
                        }
                    }
                    coverage = Double(hits) / Double(samples * samples)
                }
                let grain = grainy ? jitter(noise) : 0
                let i = 3 * (y * side + x)
                func mix(_ paper: Double, _ ink: Double) -> UInt8 {
                    UInt8(max(0, min(255, (paper + grain) * (1 - coverage) + ink * coverage + 0.5)))
                }
                pixels[i] = mix(background.0, fill.0)
                pixels[i + 1] = mix(background.1, fill.1)
                pixels[i + 2] = mix(background.2, fill.2)
            }
        }
        return pixels
    }
}
