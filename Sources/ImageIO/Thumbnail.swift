/// Small JPEG previews of pictures (the web page's result grid): upright (EXIF applied), scaled
/// to fit a square of `maxSide` pixels by area averaging, transparent pixels over white.
/// JPEGs are decoded at 1/2, 1/4 or 1/8 scale in the DCT domain when that still leaves at least
/// `maxSide` pixels, so a large photo costs a fraction of a full decode. Not CLIP's input (that is
/// `Preprocessor`); only what a person looks at.
public enum Thumbnail {
    public static let defaultMaxSide = 256

    /// - Throws: `ImageIOError` as decoding does (format, size and pixel limits included).
    public static func jpeg(_ bytes: [UInt8], maxSide: Int = defaultMaxSide, decoder: ImageDecoder = ImageDecoder(),
                            quality: Int = 80) throws -> (jpeg: [UInt8], width: Int, height: Int) {
        precondition(maxSide >= 1)
        var denominator = 1
        if bytes.withUnsafeBytes({ ImageFormat.detect($0) }) == .jpeg,
           let header = try? bytes.withUnsafeBytes({ try ImageDecoder.jpegHeader($0) }) {
            let longSide = max(header.width, header.height)
            for d in [8, 4, 2] where longSide / d >= maxSide {
                denominator = d
                break
            }
        }
        let image = try decoder.decode(bytes, dctScaleDenominator: denominator).applyingOrientation()
        let (rgb, width, height) = scaled(image, maxSide: maxSide)
        return (try JPEGEncoder.encode(rgb: rgb, width: width, height: height, quality: quality), width, height)
    }

    /// Packed RGB (3 bytes per pixel) of `image` fitted into `maxSide` × `maxSide`.
    static func scaled(_ image: DecodedImage, maxSide: Int) -> (rgb: [UInt8], width: Int, height: Int) {
        let (w, h) = (image.width, image.height)
        let scale = min(1.0, Double(maxSide) / Double(max(w, h)))
        let outW = max(1, min(maxSide, Int((Double(w) * scale).rounded())))
        let outH = max(1, min(maxSide, Int((Double(h) * scale).rounded())))
        var out = [UInt8](repeating: 0, count: outW * outH * 3)
        let layout = image.layout
        let alpha = image.hasAlpha
        image.withPixels { pixels in
            let bpp = layout.bytesPerPixel
            let rowBytes = w * bpp
            for oy in 0..<outH {
                let y0 = oy * h / outH, y1 = max(y0 + 1, (oy + 1) * h / outH)
                for ox in 0..<outW {
                    let x0 = ox * w / outW, x1 = max(x0 + 1, (ox + 1) * w / outW)
                    var sum = (0, 0, 0)
                    for y in y0..<y1 {
                        var p = y * rowBytes + x0 * bpp
                        for _ in x0..<x1 {
                            let c = rgbOf(pixels, at: p, layout: layout, alpha: alpha)
                            sum.0 += c.0
                            sum.1 += c.1
                            sum.2 += c.2
                            p += bpp
                        }
                    }
                    let n = (y1 - y0) * (x1 - x0)
                    let o = (oy * outW + ox) * 3
                    out[o] = UInt8((sum.0 + n / 2) / n)
                    out[o + 1] = UInt8((sum.1 + n / 2) / n)
                    out[o + 2] = UInt8((sum.2 + n / 2) / n)
                }
            }
        }
        return (out, outW, outH)
    }

    /// One pixel as RGB: gray replicated, CMYK inked as Pillow converts it, alpha over white.
    @inline(__always)
    static func rgbOf(_ pixels: UnsafeBufferPointer<UInt8>, at p: Int, layout: PixelLayout, alpha: Bool) -> (Int, Int, Int) {
        switch layout {
        case .gray:
            let v = Int(pixels[p])
            return (v, v, v)
        case .rgb:
            let (r, g, b) = (Int(pixels[p]), Int(pixels[p + 1]), Int(pixels[p + 2]))
            guard alpha else { return (r, g, b) }
            let a = Int(pixels[p + 3])
            return ((r * a + 255 * (255 - a)) / 255, (g * a + 255 * (255 - a)) / 255, (b * a + 255 * (255 - a)) / 255)
        case .cmyk:
            let k = 255 - Int(pixels[p + 3])
            return ((255 - Int(pixels[p])) * k / 255, (255 - Int(pixels[p + 1])) * k / 255, (255 - Int(pixels[p + 2])) * k / 255)
        }
    }
}
