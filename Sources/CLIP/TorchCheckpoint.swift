import Foundation

/// Reads a state dict written by `torch.save(state_dict)` (the zip format of PyTorch ≥ 1.6)
/// without executing anything: the pickle is interpreted by a small stack machine that knows
/// only the opcodes and the handful of globals a tensor state dict uses, and refuses the rest.
enum TorchCheckpoint {
    static func read(_ url: URL) throws -> [String: CheckpointTensor] {
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw CLIPError(.unreadable, "\(url.path): cannot read: \(error.localizedDescription)")
        }
        return try parse(data, file: url.path)
    }

    /// Reads the tensors of a `torch.save` zip held in memory; `file` names it in errors.
    static func parse(_ data: Data, file: String) throws -> [String: CheckpointTensor] {
        let archive = try ZipArchive(data: data, file: file)
        guard let pickleName = archive.entries.keys.sorted().first(where: { $0.hasSuffix("/data.pkl") || $0 == "data.pkl" }) else {
            throw CLIPError(.unsupportedFormat, "\(file): zip has no data.pkl: not a torch.save checkpoint")
        }
        let prefix = String(pickleName.dropLast("data.pkl".count))
        let pickle = try archive.contents(of: pickleName)
        var machine = PickleMachine(bytes: pickle, file: file)
        let root = try machine.run()
        guard case .dict(let items) = root else {
            throw CLIPError(.unsupportedFormat, "\(file): the pickle holds \(root.kindName), not a state dict")
        }
        var tensors: [String: CheckpointTensor] = [:]
        var storages: [String: Data] = [:]
        for (key, value) in items {
            guard case .string(let name) = key else { continue }
            guard case .tensor(let ref) = value else { continue }
            let blob: Data
            if let cached = storages[ref.storageKey] {
                blob = cached
            } else {
                blob = try archive.contents(of: prefix + "data/" + ref.storageKey)
                storages[ref.storageKey] = blob
            }
            func corrupt(_ m: String) -> CLIPError { CLIPError(.corrupt, "\(file): tensor \(name): \(m)") }
            guard let count = CheckpointLimits.elementCount(ref.shape) else {
                throw corrupt("shape \(ref.shape) has more than \(CheckpointLimits.maxElements) elements")
            }
            let storageElements = blob.count / ref.dtype.byteSize
            if count > 0 {
                // Highest element the view touches, with checked arithmetic.
                var last = ref.offset
                for (size, stride) in zip(ref.shape, ref.strides) {
                    guard let step = CheckpointLimits.multiply(size - 1, stride),
                          let sum = CheckpointLimits.add(last, step) else {
                        throw corrupt("view (offset \(ref.offset), shape \(ref.shape), strides \(ref.strides)) overflows")
                    }
                    last = sum
                }
                guard last < storageElements else {
                    throw corrupt("needs element \(last) of storage \(ref.storageKey) but it has \(storageElements) (truncated?)")
                }
                // A view that repeats storage elements (stride 0, overlapping strides) would
                // expand a small file into a large tensor: refuse views larger than their storage.
                guard count <= storageElements - ref.offset else {
                    throw corrupt("view of \(count) elements (shape \(ref.shape), strides \(ref.strides)) is larger than the \(storageElements - ref.offset) elements of storage \(ref.storageKey) it reads: repeated (stride-0 or overlapping) views are not supported")
                }
                guard !hasOverlap(ref.shape, ref.strides) else {
                    throw corrupt("view (shape \(ref.shape), strides \(ref.strides)) reads some elements more than once: repeated (stride-0 or overlapping) views are not supported")
                }
            }
            tensors[name] = CheckpointTensor(name: name, dtype: ref.dtype, shape: ref.shape, strides: ref.strides,
                                             blob: blob, elementOffset: ref.offset)
        }
        return tensors
    }

    /// Whether two index tuples of the view can address the same element. Sufficient test:
    /// sorted by stride, every stride must exceed the extent of all smaller ones (the layout
    /// of any permuted contiguous tensor or slice of one); dimensions of size 1 never repeat.
    static func hasOverlap(_ shape: [Int], _ strides: [Int]) -> Bool {
        var dims = zip(shape, strides).filter { $0.0 > 1 }
        dims.sort { $0.1 < $1.1 }
        var extent = 0   // largest offset reachable with the smaller-stride dimensions
        for (size, stride) in dims {
            guard stride > extent else { return true }
            guard let span = CheckpointLimits.multiply(size - 1, stride),
                  let e = CheckpointLimits.add(extent, span) else { return true }
            extent = e
        }
        return false
    }
}

/// The entries of a zip archive (stored, i.e. uncompressed, as torch.save writes them).
/// Every size and offset read from the file is checked against the file's length before use.
struct ZipArchive {
    struct Entry { let method: UInt16; let compressedSize: Int; let size: Int; let localHeaderOffset: Int }
    let data: Data
    let file: String
    var entries: [String: Entry] = [:]

    init(data: Data, file: String) throws {
        self.data = data
        self.file = file
        func corrupt(_ m: String) -> CLIPError { CLIPError(.corrupt, "\(file): not a valid zip checkpoint: \(m)") }
        let n = data.count
        guard n >= 22 else { throw corrupt("file too short (\(n) bytes)") }
        // A 64-bit field from the file as an offset or size within it (nil when larger than the file).
        func within(_ v: UInt64) -> Int? { v <= UInt64(n) ? Int(v) : nil }
        // End of central directory: scan back over a possible comment.
        var eocd = -1
        var i = n - 22
        let lowest = max(0, n - 22 - 65_535)
        while i >= lowest {
            if u32(i) == 0x0605_4B50 { eocd = i; break }
            i -= 1
        }
        guard eocd >= 0 else { throw corrupt("no end-of-central-directory record (truncated?)") }
        var count = Int(u16(eocd + 10))
        var cdSize = Int(u32(eocd + 12))
        var cdOffset = Int(u32(eocd + 16))
        // Zip64 end of central directory locator precedes the EOCD when present.
        if count == 0xFFFF || cdOffset == 0xFFFF_FFFF || cdSize == 0xFFFF_FFFF, eocd >= 20, u32(eocd - 20) == 0x0706_4B50 {
            guard let z64 = within(u64(eocd - 20 + 8)), z64 <= n - 56, u32(z64) == 0x0606_4B50 else {
                throw corrupt("bad zip64 end-of-central-directory record")
            }
            guard let c = within(u64(z64 + 32)), let size = within(u64(z64 + 40)), let offset = within(u64(z64 + 48)) else {
                throw corrupt("zip64 central directory fields exceed the file size \(n)")
            }
            (count, cdSize, cdOffset) = (c, size, offset)
        }
        guard cdOffset <= n, cdSize <= n - cdOffset else { throw corrupt("central directory outside the file (truncated?)") }
        // Each central directory entry takes at least 46 bytes.
        guard count <= cdSize / 46 else { throw corrupt("\(count) entries cannot fit in a \(cdSize)-byte central directory") }
        var p = cdOffset
        let cdEnd = cdOffset + cdSize
        for _ in 0..<count {
            guard p <= cdEnd - 46, u32(p) == 0x0201_4B50 else { throw corrupt("bad central directory entry") }
            let method = u16(p + 10)
            var csize = Int(u32(p + 20)), usize = Int(u32(p + 24))
            let nameLen = Int(u16(p + 28)), extraLen = Int(u16(p + 30)), commentLen = Int(u16(p + 32))
            var local = Int(u32(p + 42))
            guard nameLen + extraLen + commentLen <= cdEnd - p - 46 else { throw corrupt("entry name outside the central directory") }
            let name = String(decoding: data[(data.startIndex + p + 46)..<(data.startIndex + p + 46 + nameLen)], as: UTF8.self)
            // Zip64 extra field: sizes and offset that overflowed 32 bits, in this order.
            var e = p + 46 + nameLen
            let extraEnd = e + extraLen
            while e + 4 <= extraEnd {
                let tag = u16(e), size = Int(u16(e + 2))
                let fieldEnd = e + 4 + size
                guard fieldEnd <= extraEnd else { throw corrupt("extra field of \(name) runs past its entry") }
                if tag == 0x0001 {
                    var q = e + 4
                    func next() throws -> Int {
                        guard q + 8 <= fieldEnd else { throw corrupt("zip64 extra field of \(name) is too short") }
                        guard let v = within(u64(q)) else { throw corrupt("zip64 size or offset of \(name) exceeds the file size \(n)") }
                        q += 8
                        return v
                    }
                    if usize == 0xFFFF_FFFF { usize = try next() }
                    if csize == 0xFFFF_FFFF { csize = try next() }
                    if local == 0xFFFF_FFFF { local = try next() }
                }
                e = fieldEnd
            }
            guard entries[name] == nil else { throw corrupt("entry \(name) appears twice") }
            entries[name] = Entry(method: method, compressedSize: csize, size: usize, localHeaderOffset: local)
            p += 46 + nameLen + extraLen + commentLen
        }
        // Entries may not share bytes, so their sizes never add up to more than the file.
        let spans = entries.values.map { ($0.localHeaderOffset, $0.localHeaderOffset + min($0.compressedSize, n)) }.sorted { $0.0 < $1.0 }
        for (a, b) in zip(spans, spans.dropFirst()) where b.0 < a.1 {
            throw corrupt("entries overlap at byte \(b.0)")
        }
    }

    func contents(of name: String) throws -> Data {
        guard let e = entries[name] else {
            throw CLIPError(.corrupt, "\(file): zip entry \(name) is missing")
        }
        guard e.method == 0 else {
            throw CLIPError(.unsupportedFormat, "\(file): zip entry \(name) is compressed (method \(e.method)); torch.save writes stored entries")
        }
        guard e.compressedSize == e.size else {
            throw CLIPError(.corrupt, "\(file): stored zip entry \(name) has compressed size \(e.compressedSize) but size \(e.size)")
        }
        let h = e.localHeaderOffset
        guard h <= data.count - 30, u32(h) == 0x0403_4B50 else {
            throw CLIPError(.corrupt, "\(file): bad local header for \(name)")
        }
        let start = h + 30 + Int(u16(h + 26)) + Int(u16(h + 28))
        guard start <= data.count, e.size <= data.count - start else {
            throw CLIPError(.corrupt, "\(file): entry \(name) runs past the end of the file (truncated?)")
        }
        return data.subdata(in: (data.startIndex + start)..<(data.startIndex + start + e.size))
    }

    private func u16(_ o: Int) -> UInt16 { data.withUnsafeBytes { UInt16(littleEndian: $0.loadUnaligned(fromByteOffset: o, as: UInt16.self)) } }
    private func u32(_ o: Int) -> UInt32 { data.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: o, as: UInt32.self)) } }
    private func u64(_ o: Int) -> UInt64 { data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: o, as: UInt64.self)) } }
}

struct TensorRef {
    let storageKey: String
    let dtype: CheckpointDType
    let offset: Int
    let shape: [Int]
    let strides: [Int]
}

indirect enum PickleValue {
    case none, bool(Bool), int(Int), float(Double), string(String), bytes(Data)
    case tuple([PickleValue]), list([PickleValue]), dict([(PickleValue, PickleValue)])
    case global(String, String)
    case storage(key: String, dtype: CheckpointDType)
    case tensor(TensorRef)
    case mark

    var kindName: String {
        switch self {
        case .none: return "None"
        case .bool: return "a bool"
        case .int: return "an int"
        case .float: return "a float"
        case .string: return "a string"
        case .bytes: return "bytes"
        case .tuple: return "a tuple"
        case .list: return "a list"
        case .dict: return "a dict"
        case .global(let m, let n): return "\(m).\(n)"
        case .storage: return "a storage"
        case .tensor: return "a tensor"
        case .mark: return "a mark"
        }
    }
}

/// A pickle interpreter restricted to the data a tensor state dict contains. Every length is
/// checked against the bytes left, containers nest at most `CheckpointLimits.maxPickleDepth`
/// deep, and the elements copied while building containers are budgeted.
struct PickleMachine {
    /// A value on the stack or in the memo with the depth of its nesting.
    struct Item { var value: PickleValue; var depth: Int }

    let bytes: Data
    let file: String
    var pos = 0
    var stack: [Item] = []
    var memo: [Int: Item] = [:]
    var work = 0

    init(bytes: Data, file: String) {
        self.bytes = Data(bytes)
        self.file = file
    }

    private func fail(_ m: String) -> CLIPError { CLIPError(.corrupt, "\(file): cannot read the checkpoint's pickle: \(m)") }

    private mutating func take(_ n: Int) throws -> Data {
        guard n >= 0, n <= bytes.count - pos else { throw fail("a length of \(n) bytes at byte \(pos) runs past the end of the pickle (\(bytes.count) bytes)") }
        defer { pos += n }
        return bytes.subdata(in: pos..<(pos + n))
    }
    private mutating func byte() throws -> UInt8 { try take(1).first! }
    /// Unsigned little-endian integer of `n` bytes (n <= 8); nil when it does not fit an Int.
    private mutating func uint(_ n: Int) throws -> Int {
        let d = try take(n)
        var v: UInt64 = 0
        for (i, b) in d.enumerated() { v |= UInt64(b) << (8 * UInt64(i)) }
        guard v <= UInt64(Int.max) else { throw fail("length \(v) at byte \(pos - n) is too large") }
        return Int(v)
    }
    private mutating func line() throws -> String {
        guard let nl = bytes[pos...].firstIndex(of: 0x0A) else { throw fail("unterminated line") }
        let s = String(decoding: bytes[pos..<nl], as: UTF8.self)
        pos = nl + 1
        return s
    }
    private mutating func push(_ v: PickleValue) { stack.append(Item(value: v, depth: 0)) }
    /// Pushes a container built from `children`, refusing nesting beyond the limit.
    private mutating func push(_ v: PickleValue, children: [Item]) throws {
        try push(v, depth: 1 + (children.map(\.depth).max() ?? 0))
    }
    /// Pushes a container that grew: its depth stays unless a new element is deeper.
    private mutating func push(_ v: PickleValue, extending container: Item, with added: [Item]) throws {
        try push(v, depth: max(max(container.depth, 1), 1 + (added.map(\.depth).max() ?? 0)))
    }
    private mutating func push(_ v: PickleValue, depth: Int) throws {
        guard depth <= CheckpointLimits.maxPickleDepth else {
            throw fail("containers nested more than \(CheckpointLimits.maxPickleDepth) deep at byte \(pos - 1)")
        }
        stack.append(Item(value: v, depth: depth))
    }
    private mutating func pop() throws -> Item {
        guard let v = stack.popLast() else { throw fail("stack underflow") }
        return v
    }
    private mutating func popToMark() throws -> [Item] {
        guard let m = stack.lastIndex(where: { if case .mark = $0.value { return true } else { return false } }) else {
            throw fail("missing MARK")
        }
        let items = Array(stack[(m + 1)...])
        stack.removeSubrange(m...)
        try charge(items.count)
        return items
    }
    /// Counts copied elements against the budget (APPEND copies the list it extends).
    private mutating func charge(_ n: Int) throws {
        work += n + 1
        guard work <= CheckpointLimits.maxPickleWork else {
            throw fail("the pickle builds more than \(CheckpointLimits.maxPickleWork) container elements")
        }
    }
    private mutating func remember(_ key: Int) throws {
        guard let top = stack.last else { throw fail("memo store on an empty stack") }
        guard key >= 0, key < CheckpointLimits.maxPickleMemo, memo.count < CheckpointLimits.maxPickleMemo || memo[key] != nil else {
            throw fail("memo key \(key) beyond the limit of \(CheckpointLimits.maxPickleMemo)")
        }
        memo[key] = top
    }

    mutating func run() throws -> PickleValue {
        while true {
            let op = try byte()
            switch op {
            case 0x80: _ = try byte()                                   // PROTO
            case 0x95: _ = try take(8)                                  // FRAME
            case 0x2E: return try pop().value                           // STOP
            case 0x7D: push(.dict([]))                                  // EMPTY_DICT
            case 0x5D: push(.list([]))                                  // EMPTY_LIST
            case 0x29: push(.tuple([]))                                 // EMPTY_TUPLE
            case 0x28: push(.mark)                                      // MARK
            case 0x4E: push(.none)                                      // NONE
            case 0x88: push(.bool(true))                                // NEWTRUE
            case 0x89: push(.bool(false))                               // NEWFALSE
            case 0x4B: push(.int(try uint(1)))                          // BININT1
            case 0x4D: push(.int(try uint(2)))                          // BININT2
            case 0x4A: push(.int(Int(Int32(truncatingIfNeeded: try uint(4)))))  // BININT
            case 0x8A:                                                  // LONG1
                let n = Int(try byte())
                let d = try take(n)
                guard n <= 8 else { throw fail("integer too large") }
                var v: UInt64 = 0
                for (i, b) in d.enumerated() { v |= UInt64(b) << (8 * UInt64(i)) }
                if n > 0 && n < 8 && d.last! & 0x80 != 0 { v |= ~UInt64(0) << (8 * UInt64(n)) }   // sign-extend
                push(.int(Int(bitPattern: UInt(v))))
            case 0x47:                                                  // BINFLOAT (big endian)
                var v: UInt64 = 0
                for b in try take(8) { v = v << 8 | UInt64(b) }
                push(.float(Double(bitPattern: v)))
            case 0x58: let n = try uint(4); push(.string(String(decoding: try take(n), as: UTF8.self)))  // BINUNICODE
            case 0x8C: let n = try uint(1); push(.string(String(decoding: try take(n), as: UTF8.self)))  // SHORT_BINUNICODE
            case 0x8D: let n = try uint(8); push(.string(String(decoding: try take(n), as: UTF8.self)))  // BINUNICODE8
            case 0x54: let n = try uint(4); push(.bytes(try take(n)))   // BINSTRING
            case 0x55: let n = try uint(1); push(.bytes(try take(n)))   // SHORT_BINSTRING
            case 0x42: let n = try uint(4); push(.bytes(try take(n)))   // BINBYTES
            case 0x43: let n = try uint(1); push(.bytes(try take(n)))   // SHORT_BINBYTES
            case 0x8E: let n = try uint(8); push(.bytes(try take(n)))   // BINBYTES8
            case 0x63:                                                  // GLOBAL
                let module = try line(), name = try line()
                push(.global(module, name))
            case 0x93:                                                  // STACK_GLOBAL
                let name = try pop().value, module = try pop().value
                guard case .string(let m) = module, case .string(let n) = name else { throw fail("bad STACK_GLOBAL") }
                push(.global(m, n))
            case 0x71: try remember(try uint(1))                        // BINPUT
            case 0x72: try remember(try uint(4))                        // LONG_BINPUT
            case 0x94: try remember(memo.count)                         // MEMOIZE
            case 0x68, 0x6A:                                            // BINGET, LONG_BINGET
                let k = try uint(op == 0x68 ? 1 : 4)
                guard let v = memo[k] else { throw fail("memo \(k) missing") }
                stack.append(v)
            case 0x74:                                                  // TUPLE
                let items = try popToMark()
                try push(.tuple(items.map(\.value)), children: items)
            case 0x85:                                                  // TUPLE1
                let a = try pop()
                try push(.tuple([a.value]), children: [a])
            case 0x86:                                                  // TUPLE2
                let b = try pop(), a = try pop()
                try push(.tuple([a.value, b.value]), children: [a, b])
            case 0x87:                                                  // TUPLE3
                let c = try pop(), b = try pop(), a = try pop()
                try push(.tuple([a.value, b.value, c.value]), children: [a, b, c])
            case 0x6C:                                                  // LIST
                let items = try popToMark()
                try push(.list(items.map(\.value)), children: items)
            case 0x64:                                                  // DICT
                let items = try popToMark()
                guard items.count % 2 == 0 else { throw fail("odd DICT") }
                try push(.dict(stride(from: 0, to: items.count, by: 2).map { (items[$0].value, items[$0 + 1].value) }), children: items)
            case 0x61:                                                  // APPEND
                let v = try pop(), list = try pop()
                guard case .list(var l) = list.value else { throw fail("APPEND to a non-list") }
                try charge(l.count)
                l.append(v.value)
                try push(.list(l), extending: list, with: [v])
            case 0x65:                                                  // APPENDS
                let items = try popToMark()
                let list = try pop()
                guard case .list(var l) = list.value else { throw fail("APPENDS to a non-list") }
                try charge(l.count)
                l += items.map(\.value)
                try push(.list(l), extending: list, with: items)
            case 0x73:                                                  // SETITEM
                let v = try pop(), k = try pop(), dict = try pop()
                guard case .dict(var d) = dict.value else { throw fail("SETITEM on a non-dict") }
                try charge(d.count)
                d.append((k.value, v.value))
                try push(.dict(d), extending: dict, with: [k, v])
            case 0x75:                                                  // SETITEMS
                let items = try popToMark()
                let dict = try pop()
                guard items.count % 2 == 0, case .dict(var d) = dict.value else { throw fail("bad SETITEMS") }
                try charge(d.count)
                for j in stride(from: 0, to: items.count, by: 2) { d.append((items[j].value, items[j + 1].value)) }
                try push(.dict(d), extending: dict, with: items)
            case 0x51:                                                  // BINPERSID
                let pid = try pop()
                push(try persistentLoad(pid.value))
            case 0x52, 0x81:                                            // REDUCE, NEWOBJ
                let args = try pop(), callable = try pop()
                try push(try reduce(callable.value, args.value), children: [args])
            case 0x62:                                                  // BUILD: state of an object we keep as data
                _ = try pop()
            default:
                throw fail(String(format: "unsupported opcode 0x%02x at byte %d", op, pos - 1))
            }
        }
    }

    private func persistentLoad(_ pid: PickleValue) throws -> PickleValue {
        guard case .tuple(let t) = pid, t.count >= 5, case .string("storage") = t[0],
              case .global(_, let typeName) = t[1], case .string(let key) = t[2] else {
            throw fail("unsupported persistent id")
        }
        let dtype: CheckpointDType
        switch typeName {
        case "FloatStorage": dtype = .f32
        case "HalfStorage": dtype = .f16
        case "BFloat16Storage": dtype = .bf16
        case "DoubleStorage": dtype = .f64
        case "IntStorage": dtype = .i32
        case "LongStorage": dtype = .i64
        default: throw CLIPError(.unsupportedFormat, "\(file): unsupported tensor storage \(typeName)")
        }
        return .storage(key: key, dtype: dtype)
    }

    private func ints(_ v: PickleValue) -> [Int]? {
        guard case .tuple(let items) = v else { return nil }
        var out: [Int] = []
        for i in items { guard case .int(let x) = i else { return nil }; out.append(x) }
        return out
    }

    private func reduce(_ callable: PickleValue, _ args: PickleValue) throws -> PickleValue {
        guard case .global(let module, let name) = callable else { throw fail("REDUCE on \(callable.kindName)") }
        guard case .tuple(let a) = args else { throw fail("REDUCE arguments are not a tuple") }
        switch (module, name) {
        case ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor"):
            guard a.count >= 4, case .storage(let key, let dtype) = a[0], case .int(let offset) = a[1],
                  let shape = ints(a[2]), let strides = ints(a[3]), shape.count == strides.count,
                  shape.count <= CheckpointLimits.maxRank,
                  shape.allSatisfy({ $0 >= 0 }), strides.allSatisfy({ $0 >= 0 }), offset >= 0 else {
                throw fail("malformed tensor record")
            }
            return .tensor(TensorRef(storageKey: key, dtype: dtype, offset: offset, shape: shape, strides: strides))
        case ("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_parameter_with_state"):
            guard let first = a.first else { throw fail("malformed parameter record") }
            return first
        case ("collections", "OrderedDict"):
            return .dict([])
        default:
            throw CLIPError(.unsupportedFormat, "\(file): the checkpoint's pickle calls \(module).\(name), which clipd refuses to execute; save a plain state dict (torch.save(model.state_dict()))")
        }
    }
}
