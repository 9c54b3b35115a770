// libFuzzer target: JPEG/PNG decoding (libjpeg-turbo, libpng through CImageCodecs) and the
// CLIP preprocessing of whatever decodes, with and without EXIF orientation.
import ImageIO

let decoder = ImageDecoder(maxPixels: 4_000_000)
let upright = Preprocessor(options: PreprocessOptions(imageSize: 32), decoder: decoder)
let stored = Preprocessor(options: PreprocessOptions(imageSize: 24, applyExifOrientation: false, dctDownscale: .keepTarget),
                          decoder: decoder)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImage(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    _ = try? upright.preprocess(bytes)
    _ = try? stored.preprocess(bytes)
    return 0
}
