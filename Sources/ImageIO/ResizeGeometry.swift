/// torchvision's `Resize(S)` + `CenterCrop(S)` geometry on a Pillow image.
public struct ResizeGeometry: Sendable, Equatable {
    public let resizedWidth: Int
    public let resizedHeight: Int
    public let cropLeft: Int
    public let cropTop: Int
    public let cropSize: Int

    /// Shortest side -> `size`, long side -> `int(size * long / short)` (truncated, as
    /// torchvision computes it in Python floats); crop offsets `int(round((resized - size) / 2.0))`
    /// with Python's round-half-to-even.
    public init(width: Int, height: Int, size: Int) {
        precondition(width > 0 && height > 0 && size > 0)
        let short = min(width, height)
        let long = max(width, height)
        let newLong = Int(Double(size * long) / Double(short))
        if width <= height {
            resizedWidth = size
            resizedHeight = newLong
        } else {
            resizedWidth = newLong
            resizedHeight = size
        }
        cropSize = size
        cropLeft = Self.centerOffset(resizedWidth, size)
        cropTop = Self.centerOffset(resizedHeight, size)
    }

    static func centerOffset(_ resized: Int, _ size: Int) -> Int {
        Int((Double(resized - size) / 2.0).rounded(.toNearestOrEven))
    }
}
