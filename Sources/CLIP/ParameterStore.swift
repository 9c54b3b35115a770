import Tensor

/// All parameters of a model in one contiguous Float32 allocation (so an optimizer, a
/// gradient buffer or a weight interpolation is one loop), addressed by OpenAI/open_clip name.
public final class ParameterStore: @unchecked Sendable {
    public struct Entry: Sendable {
        public let name: String
        public let shape: [Int]
        public let offset: Int
        public var count: Int { shape.reduce(1, *) }
    }

    public let entries: [Entry]
    public let count: Int
    public let storage: UnsafeMutablePointer<Float>
    private let index: [String: Int]

    /// A zero-filled store with the given layout.
    public init(layout: [(name: String, shape: [Int])]) {
        var entries: [Entry] = []
        var offset = 0
        var index: [String: Int] = [:]
        for (name, shape) in layout {
            index[name] = entries.count
            entries.append(Entry(name: name, shape: shape, offset: offset))
            offset += shape.reduce(1, *)
        }
        self.entries = entries
        self.index = index
        self.count = offset
        self.storage = .allocate(capacity: max(offset, 1))
        self.storage.initialize(repeating: 0, count: max(offset, 1))
    }

    /// A store with the same layout and zero values (gradients, optimizer moments).
    public convenience init(zerosLike other: ParameterStore) {
        self.init(layout: other.entries.map { ($0.name, $0.shape) })
    }

    deinit { storage.deallocate() }

    public func entry(_ name: String) -> Entry? { index[name].map { entries[$0] } }

    /// Pointer to the named parameter; the name must exist (names come from the config).
    public subscript(_ name: String) -> UnsafeMutablePointer<Float> {
        guard let i = index[name] else { preconditionFailure("no parameter named \(name)") }
        return storage + entries[i].offset
    }

    public func tensor(_ name: String) -> Tensor {
        let e = entries[index[name]!]
        return Tensor(shape: e.shape, data: Array(UnsafeBufferPointer(start: storage + e.offset, count: e.count)))
    }

    public func copy() -> ParameterStore {
        let c = ParameterStore(zerosLike: self)
        c.storage.update(from: storage, count: count)
        return c
    }

    public func zero() { storage.update(repeating: 0, count: count) }
}
