import Foundation

extension CLIPTokenizer {
    /// `clipd tokenize --bench-seconds` (Benchmarks/tokenizer.sh): tokenizes `captions`
    /// round-robin on the calling thread for about `seconds`; returns a JSON summary.
    public func benchmark(_ captions: [String], contextLength: Int, seconds: Double) -> String {
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = start + .milliseconds(Int64(seconds * 1000))
        var count = 0
        var checksum = 0
        while clock.now < deadline {
            for caption in captions {
                checksum &+= tokenize(caption, contextLength: contextLength).tokenCount
            }
            count += captions.count
        }
        let elapsed = clock.now - start
        let secondsElapsed = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return "{\"captions\":\(count),\"seconds\":\(secondsElapsed),\"captions_per_second\":\(Double(count) / secondsElapsed),\"token_checksum\":\(checksum)}"
    }
}
