import Foundation

extension PreprocessSummary {
    /// The summary `clipd preprocess` prints: source and decoded sizes, mode, orientation, resize and crop.
    public func json(image: String, output: String) -> String {
        func quoted(_ text: String) -> String {
            var result = "\""
            for scalar in text.unicodeScalars {
                switch scalar {
                case "\"": result += "\\\""
                case "\\": result += "\\\\"
                case _ where scalar.value < 0x20: result += String(format: "\\u%04x", scalar.value)
                default: result.unicodeScalars.append(scalar)
                }
            }
            return result + "\""
        }
        let g = geometry
        let fields: [(String, String)] = [
            ("image", quoted(image)),
            ("output", quoted(output)),
            ("format", quoted(format.rawValue)),
            ("source_width", "\(sourceWidth)"),
            ("source_height", "\(sourceHeight)"),
            ("mode", quoted(pillowMode)),
            ("decode_mode", quoted(decodeMode)),
            ("dct_scale", "\(dctScaleDenominator)"),
            ("exif_orientation", "\(exifOrientation)"),
            ("orientation_applied", "\(orientationApplied)"),
            ("decoded_width", "\(decodedWidth)"),
            ("decoded_height", "\(decodedHeight)"),
            ("resized_width", "\(g.resizedWidth)"),
            ("resized_height", "\(g.resizedHeight)"),
            ("crop_left", "\(g.cropLeft)"),
            ("crop_top", "\(g.cropTop)"),
            ("image_size", "\(g.cropSize)"),
            ("shape", "[3,\(g.cropSize),\(g.cropSize)]"),
        ]
        return "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
    }
}
