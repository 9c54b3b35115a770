/// A synthetic, captioned image set: coloured shapes of two sizes in five positions on a light
/// background, with captions such as "a small red circle on the left". Some colour–shape
/// combinations are held out of training, so zero-shot accuracy on them measures whether a
/// model learned colour and shape as separate concepts.
public struct ShapeScene: Sendable, Equatable {
    public enum Shape: String, CaseIterable, Sendable { case circle, square, triangle, cross }
    public enum Colour: String, CaseIterable, Sendable { case red, green, blue, yellow, purple, orange }
    public enum Size: String, CaseIterable, Sendable { case small, large }
    public enum Position: String, CaseIterable, Sendable { case left, right, top, bottom, center }

    public let shape: Shape
    public let colour: Colour
    public let size: Size
    public let position: Position

    public var caption: String {
        let place: String
        switch position {
        case .left: place = "on the left"
        case .right: place = "on the right"
        case .top: place = "at the top"
        case .bottom: place = "at the bottom"
        case .center: place = "in the center"
        }
        return "a \(size.rawValue) \(colour.rawValue) \(shape.rawValue) \(place)"
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

    /// Renders the scene as RGB bytes [side, side, 3], with a small deterministic jitter of
    /// position, size and background from `variant`.
    public func render(side: Int, variant: UInt64 = 0) -> [UInt8] {
        var rng = variant &* 0x9E37_79B9_7F4A_7C15 &+ 0x2545_F491_4F6C_DD1D
        func jitter(_ range: Double) -> Double {
            rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17
            return (Double(rng % 10_000) / 10_000 - 0.5) * 2 * range
        }
        let s = Double(side)
        let bgBase = 235.0 + jitter(15)
        var pixels = [UInt8](repeating: 0, count: side * side * 3)
        for i in 0..<(side * side) {
            let v = UInt8(max(0, min(255, bgBase)))
            pixels[3 * i] = v; pixels[3 * i + 1] = v; pixels[3 * i + 2] = v
        }
        let radius = (size == .small ? 0.13 : 0.24) * s * (1 + jitter(0.1))
        var (cx, cy) = (0.5 * s, 0.5 * s)
        switch position {
        case .left: cx = 0.27 * s
        case .right: cx = 0.73 * s
        case .top: cy = 0.27 * s
        case .bottom: cy = 0.73 * s
        case .center: break
        }
        cx += jitter(0.04 * s); cy += jitter(0.04 * s)
        let (r, g, b) = Self.rgb[colour]!
        for y in 0..<side {
            for x in 0..<side {
                let dx = Double(x) + 0.5 - cx, dy = Double(y) + 0.5 - cy
                let inside: Bool
                switch shape {
                case .circle: inside = dx * dx + dy * dy <= radius * radius
                case .square: inside = abs(dx) <= radius * 0.85 && abs(dy) <= radius * 0.85
                case .triangle:
                    // Upward triangle: apex at top, base at bottom.
                    let t = (dy + radius) / (2 * radius)
                    inside = dy >= -radius && dy <= radius && abs(dx) <= t * radius
                case .cross: inside = (abs(dx) <= radius * 0.3 && abs(dy) <= radius) || (abs(dy) <= radius * 0.3 && abs(dx) <= radius)
                }
                if inside {
                    let i = 3 * (y * side + x)
                    pixels[i] = r; pixels[i + 1] = g; pixels[i + 2] = b
                }
            }
        }
        return pixels
    }
}
