import CLIP
import Foundation
import ImageIO

/// Rendered RGB -> JPEG (libjpeg) -> the daemon's decode and preprocessing at the model's size.
public struct ShapeImages: Sendable {
    let quality: Int
    let preprocessor: Preprocessor

    public init(config: CLIPConfig, quality: Int) {
        self.quality = quality
        preprocessor = Preprocessor(options: PreprocessOptions(imageSize: config.imageSize, mean: config.imageMean, std: config.imageStd))
    }

    public func preprocess(_ rgb: [UInt8], side: Int) throws -> [Float] {
        try preprocessor.preprocess(JPEGEncoder.encode(rgb: rgb, width: side, height: side, quality: quality)).tensor
    }
}
