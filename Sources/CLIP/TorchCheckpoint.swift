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
        let file = url.path
        let zip = try ZipArchive(data: data, file: file)
        guard let pickleName = zip.entries.keys.first(where: { $0.hasSuffix("/data.pkl") || $0 == "data.pkl" }) else {
            throw CLIPError(.unsupportedFormat, "\(file): zip has no data.pkl: not a torch.save checkpoint")
        }
        let prefix = String(pickleName.dropLast("data.pkl".count))
        let pickle = try zip.contents(of: pickleName)
        var machine = PickleMachine(bytes: pickle, file: file)
        let root = try machine.run()
        guard case .dict(let items) = root else {
            throw CLIPError(.unsupportedFormat, "\(file): the pickle holds \(root.kindName), not a state dict")
        }
        var tensors: [String: CheckpointTensor] = [:]
        for (key, value) in items {
            guard case .string(let name) = key else { continue }
            guard case .tensor(let ref) = value else { continue }
            let blob = try zip.contents(of: prefix + "data/" + ref.storageKey)
            let needed = (ref.offset + maxElement(ref.shape, ref.strides)) * ref.dtype.byteSize
            guard ref.shape.contains(0) || needed <= blob.count else {
                throw CLIPError(.corrupt, "\(file): tensor \(name) needs \(needed) bytes of storage \(ref.storageKey) but it has \(blob.count) (truncated?)")
            }
            tensors[name] = CheckpointTensor(name: name, dtype: ref.dtype, shape: ref.shape, strides: ref.strides,
                                             blob: blob, elementOffset: ref.offset)
        }
        return tensors
    }

    private static func maxElement(_ shape: [Int], _ strides: [Int]) -> Int {
        var m = 1
        for (s, st) in zip(shape, strides) where s > 0 { m += (s - 1) * st }
        return m
    }
}

/// The entries of a zip archive (stored, i.e. uncompressed, as torch.save writes them).
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
        if (count == 0xFFFF || cdOffset == 0xFFFF_FFFF), eocd >= 20, u32(eocd - 20) == 0x0706_4B50 {
            let z64 = Int(u64(eocd - 20 + 8))
            guard z64 + 56 <= n, u32(z64) == 0x0606_4B50 else { throw corrupt("bad zip64 record") }
            count = Int(u64(z64 + 32))
            cdSize = Int(u64(z64 + 40))
            cdOffset = Int(u64(z64 + 48))
        }
        guard cdOffset >= 0, cdOffset + cdSize <= n else { throw corrupt("central directory outside the file (truncated?)") }
        var p = cdOffset
        for _ in 0..<count {
            guard p + 46 <= n, u32(p) == 0x0201_4B50 else { throw corrupt("bad central directory entry") }
            let method = u16(p + 10)
            var csize = Int(u32(p + 20)), usize = Int(u32(p + 24))
            let nameLen = Int(u16(p + 28)), extraLen = Int(u16(p + 30)), commentLen = Int(u16(p + 32))
            var local = Int(u32(p + 42))
            guard p + 46 + nameLen + extraLen <= n else { throw corrupt("entry name outside the file") }
            let name = String(decoding: data[(data.startIndex + p + 46)..<(data.startIndex + p + 46 + nameLen)], as: UTF8.self)
            // Zip64 extra field: sizes and offset that overflowed 32 bits, in this order.
            var e = p + 46 + nameLen
            let extraEnd = e + extraLen
            while e + 4 <= extraEnd {
                let tag = u16(e), size = Int(u16(e + 2))
                if tag == 0x0001 {
                    var q = e + 4
                    if usize == 0xFFFF_FFFF { usize = Int(u64(q)); q += 8 }
                    if csize == 0xFFFF_FFFF { csize = Int(u64(q)); q += 8 }
                    if local == 0xFFFF_FFFF { local = Int(u64(q)); q += 8 }
                }
                e += 4 + size
            }
            entries[name] = Entry(method: method, compressedSize: csize, size: usize, localHeaderOffset: local)
            p += 46 + nameLen + extraLen + commentLen
        }
    }

    func contents(of name: String) throws -> Data {
        guard let e = entries[name] else {
            throw CLIPError(.corrupt, "\(file): zip entry \(name) is missing")
        }
        guard e.method == 0 else {
            throw CLIPError(.unsupportedFormat, "\(file): zip entry \(name) is compressed (method \(e.method)); torch.save writes stored entries")
        }
        let h = e.localHeaderOffset
        guard h + 30 <= data.count, u32(h) == 0x0403_4B50 else {
            throw CLIPError(.corrupt, "\(file): bad local header for \(name)")
        }
        let start = h + 30 + Int(u16(h + 26)) + Int(u16(h + 28))
        guard start + e.size <= data.count else {
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

/// A pickle interpreter restricted to the data a tensor state dict contains.
struct PickleMachine {
    let bytes: Data
    let file: String
    var pos = 0
    var stack: [PickleValue] = []
    var memo: [Int: PickleValue] = [:]

    init(bytes: Data, file: String) {
        self.bytes = Data(bytes)
        self.file = file
    }

    private func fail(_ m: String) -> CLIPError { CLIPError(.corrupt, "\(file): cannot read the checkpoint's pickle: \(m)") }

    private mutating func take(_ n: Int) throws -> Data {
        guard n >= 0, pos + n <= bytes.count else { throw fail("unexpected end of data") }
        defer { pos += n }
        return bytes.subdata(in: pos..<(pos + n))
    }
    private mutating func byte() throws -> UInt8 { try take(1).first! }
    private mutating func uint(_ n: Int) throws -> Int {
        let d = try take(n)
        var v = 0
        for (i, b) in d.enumerated() { v |= Int(b) << (8 * i) }
        return v
    }
    private mutating func line() throws -> String {
        guard let nl = bytes[pos...].firstIndex(of: 0x0A) else { throw fail("unterminated line") }
        let s = String(decoding: bytes[pos..<nl], as: UTF8.self)
        pos = nl + 1
        return s
    }
    private mutating func pop() throws -> PickleValue {
        guard let v = stack.popLast() else { throw fail("stack underflow") }
        return v
    }
    private mutating func popToMark() throws -> [PickleValue] {
        guard let m = stack.lastIndex(where: { if case .mark = $0 { return true } else { return false } }) else {
            throw fail("missing MARK")
        }
        let items = Array(stack[(m + 1)...])
        stack.removeSubrange(m...)
        return items
    }

    mutating func run() throws -> PickleValue {
        while true {
            let op = try byte()
            switch op {
            case 0x80: _ = try byte()                                   // PROTO
            case 0x95: _ = try take(8)                                  // FRAME
            case 0x2E: return try pop()                                 // STOP
            case 0x7D: stack.append(.dict([]))                          // EMPTY_DICT
            case 0x5D: stack.append(.list([]))                          // EMPTY_LIST
            case 0x29: stack.append(.tuple([]))                         // EMPTY_TUPLE
            case 0x28: stack.append(.mark)                              // MARK
            case 0x4E: stack.append(.none)                              // NONE
            case 0x88: stack.append(.bool(true))                        // NEWTRUE
            case 0x89: stack.append(.bool(false))                       // NEWFALSE
            case 0x4B: stack.append(.int(try uint(1)))                  // BININT1
            case 0x4D: stack.append(.int(try uint(2)))                  // BININT2
            case 0x4A: stack.append(.int(Int(Int32(truncatingIfNeeded: try uint(4)))))  // BININT
            case 0x8A:                                                  // LONG1
                let n = Int(try byte())
                let d = try take(n)
                guard n <= 8 else { throw fail("integer too large") }
                var v: Int = 0
                for (i, b) in d.enumerated() { v |= Int(b) << (8 * i) }
                if n > 0 && n < 8 && d.last! & 0x80 != 0 { v -= 1 << (8 * n) }
                stack.append(.int(v))
            case 0x47:                                                  // BINFLOAT (big endian)
                var v: UInt64 = 0
                for b in try take(8) { v = v << 8 | UInt64(b) }
                stack.append(.float(Double(bitPattern: v)))
            case 0x58: let n = try uint(4); stack.append(.string(String(decoding: try take(n), as: UTF8.self)))  // BINUNICODE
            case 0x8C: let n = try uint(1); stack.append(.string(String(decoding: try take(n), as: UTF8.self)))  // SHORT_BINUNICODE
            case 0x8D: let n = try uint(8); stack.append(.string(String(decoding: try take(n), as: UTF8.self)))  // BINUNICODE8
            case 0x54: let n = try uint(4); stack.append(.bytes(try take(n)))   // BINSTRING
            case 0x55: let n = try uint(1); stack.append(.bytes(try take(n)))   // SHORT_BINSTRING
            case 0x42: let n = try uint(4); stack.append(.bytes(try take(n)))   // BINBYTES
            case 0x43: let n = try uint(1); stack.append(.bytes(try take(n)))   // SHORT_BINBYTES
            case 0x63:                                                  // GLOBAL
                let module = try line(), name = try line()
                stack.append(.global(module, name))
            case 0x93:                                                  // STACK_GLOBAL
                let name = try pop(), module = try pop()
                guard case .string(let m) = module, case .string(let n) = name else { throw fail("bad STACK_GLOBAL") }
                stack.append(.global(m, n))
            case 0x71: memo[try uint(1)] = stack.last                   // BINPUT
            case 0x72: memo[try uint(4)] = stack.last                   // LONG_BINPUT
            case 0x94: memo[memo.count] = stack.last                    // MEMOIZE
            case 0x68, 0x6A:                                            // BINGET, LONG_BINGET
                let k = try uint(op == 0x68 ? 1 : 4)
                guard let v = memo[k] else { throw fail("memo \(k) missing") }
                stack.append(v)
            case 0x74: stack.append(.tuple(try popToMark()))            // TUPLE
            case 0x85: stack.append(.tuple([try pop()]))                // TUPLE1
            case 0x86: let b = try pop(), a = try pop(); stack.append(.tuple([a, b]))            // TUPLE2
            case 0x87: let c = try pop(), b = try pop(), a = try pop(); stack.append(.tuple([a, b, c]))  // TUPLE3
            case 0x6C: stack.append(.list(try popToMark()))             // LIST
            case 0x64:                                                  // DICT
                let items = try popToMark()
                guard items.count % 2 == 0 else { throw fail("odd DICT") }
                stack.append(.dict(stride(from: 0, to: items.count, by: 2).map { (items[$0], items[$0 + 1]) }))
            case 0x61:                                                  // APPEND
                let v = try pop()
                guard case .list(var l) = try pop() else { throw fail("APPEND to a non-list") }
                l.append(v)
                stack.append(.list(l))
            case 0x65:                                                  // APPENDS
                let items = try popToMark()
                guard case .list(var l) = try pop() else { throw fail("APPENDS to a non-list") }
                l += items
                stack.append(.list(l))
            case 0x73:                                                  // SETITEM
                let v = try pop(), k = try pop()
                guard case .dict(var d) = try pop() else { throw fail("SETITEM on a non-dict") }
                d.append((k, v))
                stack.append(.dict(d))
            case 0x75:                                                  // SETITEMS
                let items = try popToMark()
                guard items.count % 2 == 0, case .dict(var d) = try pop() else { throw fail("bad SETITEMS") }
                for j in stride(from: 0, to: items.count, by: 2) { d.append((items[j], items[j + 1])) }
                stack.append(.dict(d))
            case 0x51:                                                  // BINPERSID
                stack.append(try persistentLoad(try pop()))
            case 0x52:                                                  // REDUCE
                let args = try pop(), callable = try pop()
                stack.append(try reduce(callable, args))
            case 0x81:                                                  // NEWOBJ
                let args = try pop(), cls = try pop()
                stack.append(try reduce(cls, args))
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
