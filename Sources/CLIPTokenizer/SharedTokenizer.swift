import Foundation

extension CLIPTokenizer {
    private static let sharedInstance = SharedInstance()

    /// One tokenizer per process (the vocabulary takes a moment to load; the word cache is
    /// thread-safe), loaded on first use.
    public static func shared() throws -> CLIPTokenizer {
        try sharedInstance.get()
    }

    private final class SharedInstance: @unchecked Sendable {
        private let lock = NSLock()
        private var tokenizer: CLIPTokenizer?

        func get() throws -> CLIPTokenizer {
            try lock.withLock {
                if let tokenizer { return tokenizer }
                let loaded = try CLIPTokenizer()
                tokenizer = loaded
                return loaded
            }
        }
    }
}
