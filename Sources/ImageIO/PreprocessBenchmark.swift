import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `clipd preprocess --bench-seconds` (Benchmarks/preprocess.sh): decode + preprocess in-memory
/// inputs round-robin on the calling thread for about `seconds`.
public enum PreprocessBenchmark {
    public struct Result: Sendable {
        public var images: Int
        public var seconds: Double
        /// CPU time of this process: unlike wall time, not inflated by other processes on a shared machine.
        public var cpuSeconds: Double
        /// Sum of sampled output values, so the work cannot be optimised away.
        public var checksum: Float
    }

    public static func run(_ preprocessor: Preprocessor, inputs: [[UInt8]], seconds: Double) throws -> Result {
        var output = [Float](repeating: 0, count: preprocessor.outputCount)
        var count = 0
        var checksum: Float = 0
        let cpuStart = processCPUSeconds()
        let start = DispatchTime.now().uptimeNanoseconds
        var elapsed = 0.0
        repeat {
            for input in inputs {
                _ = try input.withUnsafeBytes { bytes in
                    try output.withUnsafeMutableBufferPointer { try preprocessor.preprocess(bytes, into: $0) }
                }
                checksum += output[count % output.count]
                count += 1
            }
            elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        } while elapsed < seconds
        return Result(images: count, seconds: elapsed, cpuSeconds: processCPUSeconds() - cpuStart, checksum: checksum)
    }

    static func processCPUSeconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}
