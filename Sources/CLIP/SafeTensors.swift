import Foundation
import Tensor

/// Element types found in checkpoints; all are converted to Float32 on load.
public enum CheckpointDType: String, Sendable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16", f64 = "F64", i32 = "I32", i64 = "I64"

    var byteSize: Int {
        switch self {
        case .f16, .bf16: return 2
        case .f32, .i32: return 4
        case .f64, .i64: return 8
        }
    }
}

/// One tensor inside a checkpoint file: where its bytes are, not yet converted.
public struct CheckpointTensor: Sendable {
    public let name: String
    public let dtype: CheckpointDType
    public let shape: [Int]
    /// Element strides (row-major contiguous unless the PyTorch file stored a view).
    public let strides: [Int]
    /// The backing bytes and the element offset of element [0,...,0] within them.
    let blob: Data
    let elementOffset: Int

    public var count: Int { shape.reduce(1, *) }

    /// Converts to Float32 in row-major order into `out` (`count` elements).
    public func read(into out: UnsafeMutablePointer<Float>) {
        let n = count
        if n == 0 { return }
        let contiguous = strides == CheckpointTensor.contiguousStrides(shape)
        blob.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let base = raw.baseAddress!
            @inline(__always) func load(_ e: Int) -> Float {
                let p = base + (elementOffset + e) * dtype.byteSize
                switch dtype {
                case .f32: return Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(as: UInt32.self)))
                case .f16: return halfToFloat(UInt16(littleEndian: p.loadUnaligned(as: UInt16.self)))
                case .bf16: return Float(bitPattern: UInt32(UInt16(littleEndian: p.loadUnaligned(as: UInt16.self))) << 16)
                case .f64: return Float(Double(bitPattern: UInt64(littleEndian: p.loadUnaligned(as: UInt64.self))))
                case .i32: return Float(Int32(littleEndian: p.loadUnaligned(as: Int32.self)))
                case .i64: return Float(Int64(littleEndian: p.loadUnaligned(as: Int64.self)))
                }
            }
            if contiguous {
                if dtype == .f32 {
                    memcpy(out, base + elementOffset * 4, n * 4)
                } else {
                    for i in 0..<n { out[i] = load(i) }
                }
                return
            }
            // Strided view: walk the index space in row-major order.
            var idx = [Int](repeating: 0, count: shape.count)
            for i in 0..<n {
                var e = 0
                for d in 0..<shape.count { e += idx[d] * strides[d] }
                out[i] = load(e)
                var d = shape.count - 1
                while d >= 0 {
                    idx[d] += 1
                    if idx[d] < shape[d] { break }
                    idx[d] = 0
                    d -= 1
                }
            }
        }
    }

    public func floats() -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { buf, initialized in
            read(into: buf.baseAddress!)
            initialized = count
        }
    }

    static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var acc = 1
        for d in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[d] = acc
            acc *= shape[d]
        }
        return strides
    }
}

func halfToFloat(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exp = UInt32(h >> 10) & 0x1F
    let mant = UInt32(h & 0x3FF)
    if exp == 0 {
        if mant == 0 { return Float(bitPattern: sign) }
        // Subnormal half: value = mant * 2^-24.
        let v = Float(mant) * Float(sign: .plus, exponent: -24, significand: 1)
        return sign != 0 ? -v : v
    }
    if exp == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mant << 13)) }
    return Float(bitPattern: sign | ((exp + 112) << 23) | (mant << 13))
}

func floatToHalf(_ f: Float) -> UInt16 {
    let bits = f.bitPattern
    let sign = UInt16((bits >> 16) & 0x8000)
    let exp = Int((bits >> 23) & 0xFF)
    var mant = bits & 0x7F_FFFF
    if exp == 0xFF { return sign | 0x7C00 | (mant != 0 ? 0x200 : 0) }
    var e = exp - 127 + 15
    if e >= 31 { return sign | 0x7C00 }
    if e <= 0 {
        if e < -10 { return sign }
        mant |= 0x80_0000
        let shift = UInt32(14 - e)
        var h = mant >> shift
        let rem = mant & ((1 << shift) - 1)
        let half = UInt32(1) << (shift - 1)
        if rem > half || (rem == half && (h & 1) == 1) { h += 1 }
        return sign | UInt16(h)
    }
    var h = UInt32(e) << 10 | (mant >> 13)
    let rem = mant & 0x1FFF
    if rem > 0x1000 || (rem == 0x1000 && (h & 1) == 1) { h += 1 }
    e = 0
    return sign | UInt16(truncatingIfNeeded: h)
}

/// Reader and writer of the safetensors format: an 8-byte little-endian header length, a JSON
/// header `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {…}}`, raw data.
public enum SafeTensors {
    public static func read(_ url: URL) throws -> (tensors: [String: CheckpointTensor], metadata: [String: String]) {
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw CLIPError(.unreadable, "\(url.path): cannot read: \(error.localizedDescription)")
        }
        return try parse(data, file: url.path)
    }

    public static func parse(_ data: Data, file: String) throws -> (tensors: [String: CheckpointTensor], metadata: [String: String]) {
        func corrupt(_ m: String) -> CLIPError { CLIPError(.corrupt, "\(file): not a valid safetensors file: \(m)") }
        guard data.count >= 8 else { throw corrupt("file is \(data.count) bytes, shorter than the 8-byte header length") }
        let headerLen = data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard headerLen <= UInt64(data.count - 8), headerLen <= UInt64(CheckpointLimits.maxHeaderBytes) else {
            throw corrupt("header length \(headerLen) exceeds the file size \(data.count) (truncated?)")
        }
        let headerData = data.subdata(in: 8..<(8 + Int(headerLen)))
        guard let header = (try? JSONSerialization.jsonObject(with: headerData)) as? [String: Any] else {
            throw corrupt("header is not a JSON object")
        }
        let dataStart = 8 + Int(headerLen)
        let body = data.subdata(in: dataStart..<data.count)
        var tensors: [String: CheckpointTensor] = [:]
        var metadata: [String: String] = [:]
        var ranges: [(begin: Int, end: Int, name: String)] = []
        for (name, value) in header {
            if name == "__metadata__" {
                if let m = value as? [String: Any] {
                    for (k, v) in m { metadata[k] = v as? String ?? "\(v)" }
                }
                continue
            }
            guard let info = value as? [String: Any], let dtypeName = info["dtype"] as? String,
                  let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int],
                  offsets.count == 2 else {
                throw corrupt("entry \(name) lacks dtype, shape or data_offsets")
            }
            guard let dtype = CheckpointDType(rawValue: dtypeName) else {
                throw CLIPError(.unsupportedFormat, "\(file): tensor \(name) has unsupported dtype \(dtypeName)")
            }
            guard shape.count <= CheckpointLimits.maxRank else {
                throw corrupt("tensor \(name) has \(shape.count) dimensions (at most \(CheckpointLimits.maxRank))")
            }
            guard shape.allSatisfy({ $0 >= 0 }) else { throw corrupt("tensor \(name) has a negative dimension") }
            guard let count = CheckpointLimits.elementCount(shape) else {
                throw corrupt("tensor \(name) has shape \(shape), more than \(CheckpointLimits.maxElements) elements")
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, end >= begin, end <= body.count else {
                throw corrupt("tensor \(name) spans bytes \(begin)..<\(end) but the data section has \(body.count) bytes (truncated?)")
            }
            // count <= maxElements (2^40) and byteSize <= 8: the product cannot overflow.
            guard end - begin == count * dtype.byteSize else {
                throw corrupt("tensor \(name) has \(end - begin) bytes for shape \(shape) of \(dtypeName)")
            }
            guard begin % dtype.byteSize == 0 else { throw corrupt("tensor \(name) is misaligned") }
            ranges.append((begin, end, name))
            tensors[name] = CheckpointTensor(name: name, dtype: dtype, shape: shape,
                                             strides: CheckpointTensor.contiguousStrides(shape),
                                             blob: body, elementOffset: begin / dtype.byteSize)
        }
        // Tensors may not share bytes: the weights can never add up to more than the file holds.
        ranges.sort { $0.begin != $1.begin ? $0.begin < $1.begin : $0.end < $1.end }
        for (a, b) in zip(ranges, ranges.dropFirst()) where b.begin < a.end {
            throw corrupt("tensors \(a.name) and \(b.name) overlap (bytes \(b.begin)..<\(a.end))")
        }
        return (tensors, metadata)
    }

    /// Writes Float32 (or Float16) tensors in the given order with string metadata.
    public static func write(_ tensors: [(name: String, tensor: Tensor)], metadata: [String: String] = [:],
                             halfPrecision: Bool = false, to url: URL) throws {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        let elementSize = halfPrecision ? 2 : 4
        for (name, t) in tensors {
            let bytes = t.count * elementSize
            header[name] = ["dtype": halfPrecision ? "F16" : "F32", "shape": t.shape, "data_offsets": [offset, offset + bytes]] as [String: Any]
            offset += bytes
        }
        var headerData = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while (headerData.count + 8) % 8 != 0 { headerData.append(0x20) }
        var out = Data(capacity: 8 + headerData.count + offset)
        var len = UInt64(headerData.count).littleEndian
        withUnsafeBytes(of: &len) { out.append(contentsOf: $0) }
        out.append(headerData)
        for (_, t) in tensors {
            if halfPrecision {
                var halves = t.data.map { floatToHalf($0).littleEndian }
                halves.withUnsafeMutableBytes { out.append(contentsOf: $0) }
            } else {
                t.data.withUnsafeBytes { out.append(contentsOf: $0) }
            }
        }
        // Write to a temporary file and rename, so a reader never sees half a checkpoint.
        let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
        do {
            try out.write(to: tmp)
            if FileManager.default.fileExists(atPath: url.path) { try FileManager.default.removeItem(at: url) }
            try FileManager.default.moveItem(at: tmp, to: url)
        } catch {
            try? FileManager.default.removeItem(at: tmp)
            throw CLIPError(.unreadable, "\(url.path): cannot write: \(error.localizedDescription)")
        }
    }
}
