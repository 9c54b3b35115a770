/// Bounds that every checkpoint reader applies before it trusts a number from a file.
/// Model files are user input: a shape, an offset or a size is checked with overflow-checked
/// arithmetic against these limits and against the bytes actually present.
public enum CheckpointLimits {
    /// Largest rank of a stored tensor (CLIP uses at most 4).
    public static let maxRank = 8
    /// Largest element count of one tensor (2^40); real CLIP tensors have at most ~10^8.
    public static let maxElements = 1 << 40
    /// Largest safetensors JSON header.
    public static let maxHeaderBytes = 100_000_000
    /// Deepest nesting of containers a checkpoint's pickle may build (a state dict needs ~5).
    public static let maxPickleDepth = 64
    /// Most elements the pickle reader may copy while building containers (guards against
    /// quadratic APPEND/SETITEMS sequences); a real state dict needs a few thousand.
    public static let maxPickleWork = 50_000_000
    /// Most memo entries a pickle may define.
    public static let maxPickleMemo = 1 << 20

    /// Product of the dimensions, or nil when a dimension is negative or the product
    /// overflows or exceeds `maxElements`.
    public static func elementCount(_ shape: [Int]) -> Int? {
        var count = 1
        for d in shape {
            guard d >= 0 else { return nil }
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, p <= maxElements else { return nil }
            count = p
        }
        return count
    }

    /// Checked `a + b` (nil on overflow).
    static func add(_ a: Int, _ b: Int) -> Int? {
        let (r, o) = a.addingReportingOverflow(b)
        return o ? nil : r
    }

    /// Checked `a * b` (nil on overflow).
    static func multiply(_ a: Int, _ b: Int) -> Int? {
        let (r, o) = a.multipliedReportingOverflow(by: b)
        return o ? nil : r
    }

    /// An integer from a JSON number, or nil when it is not integral or not representable.
    static func integer(_ value: Any?) -> Int? {
        if let i = value as? Int { return i }
        guard let d = value as? Double, d.isFinite, d.rounded() == d, abs(d) < 9.0e15 else { return nil }
        return Int(d)
    }
}
