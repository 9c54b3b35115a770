import CLIP
import Fetch
import Foundation
import ImageIO
import Pipeline

/// Image URL or path → exact CLIP model input: bytes through `Fetch` (limits, retries, SSRF
/// guard), decode and preprocessing through `ImageIO` on a worker pool (never on Swift's
/// cooperative threads). Failures carry a stage-prefixed class (`fetch.timeout`,
/// `image.corrupt`, …) for dead letters.
struct ImageLoader: Sendable {
    let fetcher: ImageFetcher
    let preprocessor: Preprocessor
    let pool: WorkerPool
    /// Plain local paths (CLI use) are read directly; the daemon only takes URLs.
    let allowPlainPaths: Bool

    init(model: CLIPConfig, fetch: FetchConfiguration, workers: Int, maxPixels: Int = ImageDecoder.defaultMaxPixels,
         applyExif: Bool = true, dctDownscale: DCTDownscalePolicy = .off, allowPlainPaths: Bool) {
        fetcher = ImageFetcher(configuration: fetch)
        preprocessor = Preprocessor(options: PreprocessOptions(imageSize: model.imageSize, mean: model.imageMean, std: model.imageStd,
                                                               applyExifOrientation: applyExif, dctDownscale: dctDownscale),
                                    decoder: ImageDecoder(maxPixels: maxPixels))
        pool = WorkerPool(label: "clipd.decode", width: workers)
        self.allowPlainPaths = allowPlainPaths
    }

    func load(_ location: String) async throws -> [Float] {
        let bytes: [UInt8]
        if allowPlainPaths && !location.contains("://") {
            guard let data = FileManager.default.contents(atPath: location) else {
                throw PipelineFailure("fetch.not_found", "cannot read \(location)")
            }
            bytes = [UInt8](data)
        } else {
            do {
                bytes = try await fetcher.fetch(location).bytes
            } catch {
                throw PipelineFailure("fetch.\(error.class.rawValue)", error.message)
            }
        }
        let preprocessor = self.preprocessor
        do {
            return try await pool.run { try preprocessor.preprocess(bytes).tensor }
        } catch let e as ImageIOError {
            throw PipelineFailure("image.\(e.errorClass.rawValue)", e.message)
        }
    }
}
