import CLIP
import Executors
import Fetch
import Foundation
import ImageIO

/// Image URL (or, for the CLI, a plain path) → exact CLIP model input: bytes through `Fetch`
/// (limits, retries, SSRF guard), decode and preprocessing through `ImageIO` on a bounded
/// worker pool (never on Swift's cooperative threads). Failures carry their class
/// (`fetch.timeout`, `image.corrupt`, …) for dead letters. The daemon, the fine-tune job and
/// the CLI all load images through this one type.
public struct ImageLoader: Sendable {
    public let fetcher: ImageFetcher
    public let preprocessor: Preprocessor
    /// Decode workers; the pipeline also tokenizes captions on them.
    public let pool: WorkerPool
    /// Plain local paths (CLI use) are read directly; the daemon only takes URLs.
    public let allowPlainPaths: Bool

    public init(model: CLIPConfig, fetch: FetchConfiguration, workers: Int, maxPixels: Int = ImageDecoder.defaultMaxPixels,
                applyExif: Bool = true, dctDownscale: DCTDownscalePolicy = .off, allowPlainPaths: Bool) {
        fetcher = ImageFetcher(configuration: fetch)
        preprocessor = Preprocessor(options: PreprocessOptions(imageSize: model.imageSize, mean: model.imageMean, std: model.imageStd,
                                                               applyExifOrientation: applyExif, dctDownscale: dctDownscale),
                                    decoder: ImageDecoder(maxPixels: maxPixels))
        pool = WorkerPool(name: "clipd-decode", width: workers)
        self.allowPlainPaths = allowPlainPaths
    }

    /// - Throws: `PipelineFailure` of class `fetch.*` or `image.*`.
    public func load(_ location: String) async throws -> [Float] {
        try await pixels(from: try await bytes(location))
    }

    /// The image's bytes, as `load` fetches them.
    /// - Throws: `PipelineFailure` of class `fetch.*`.
    public func bytes(_ location: String) async throws -> [UInt8] {
        if allowPlainPaths && !location.contains("://") {
            guard let data = FileManager.default.contents(atPath: location) else {
                throw PipelineFailure(.fetch(.notFound), "cannot read \(location)")
            }
            return [UInt8](data)
        }
        do {
            return try await fetcher.fetch(location).bytes
        } catch {
            throw PipelineFailure(error)
        }
    }

    /// Decodes and preprocesses fetched bytes on the decode pool, as `load` does.
    /// - Throws: `PipelineFailure` of class `image.*`.
    public func pixels(from bytes: [UInt8]) async throws -> [Float] {
        let preprocessor = self.preprocessor
        let result: Result<[Float], PipelineFailure> = await pool.run {
            do { return .success(try preprocessor.preprocess(bytes).tensor) } catch let error as ImageIOError {
                return .failure(PipelineFailure(error))
            } catch {
                return .failure(PipelineFailure(.internal, "preprocessing failed: \(error)"))
            }
        }
        switch result {
        case .success(let pixels): return pixels
        case .failure(let failure): throw failure
        }
    }
}
