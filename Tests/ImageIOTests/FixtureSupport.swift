import Foundation
import XCTest

/// Test data from `Tests/Fixtures` (located from this file, so a fresh clone tests itself).
enum Fixtures {
    static let directory: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()   // ImageIOTests
        .deletingLastPathComponent()   // Tests
        .appendingPathComponent("Fixtures")

    static func images(_ name: String) -> URL {
        directory.appendingPathComponent("images").appendingPathComponent(name)
    }

    static func bytes(_ url: URL) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: url))
    }
}

/// Minimal safetensors reader: 8-byte little-endian header length, JSON header mapping
/// names to dtype/shape/data_offsets, then raw little-endian data.
struct SafetensorsFile {
    struct Entry {
        let dtype: String
        let shape: [Int]
        let range: Range<Int>
    }

    let entries: [String: Entry]
    private let data: Data

    init(contentsOf url: URL) throws {
        let file = try Data(contentsOf: url)
        guard file.count >= 8 else { throw CocoaError(.fileReadCorruptFile) }
        var headerLength = 0
        for (index, byte) in file.prefix(8).enumerated() {
            headerLength |= Int(byte) << (8 * index)
        }
        let headerData = file.subdata(in: 8..<(8 + headerLength))
        guard let header = try JSONSerialization.jsonObject(with: headerData) as? [String: Any] else {
            throw CocoaError(.fileReadCorruptFile)
        }
        var entries: [String: Entry] = [:]
        for (name, value) in header where name != "__metadata__" {
            guard let fields = value as? [String: Any],
                  let dtype = fields["dtype"] as? String,
                  let shape = fields["shape"] as? [Int],
                  let offsets = fields["data_offsets"] as? [Int], offsets.count == 2
            else { throw CocoaError(.fileReadCorruptFile) }
            entries[name] = Entry(dtype: dtype, shape: shape, range: (8 + headerLength + offsets[0])..<(8 + headerLength + offsets[1]))
        }
        self.entries = entries
        self.data = file
    }

    func float32(_ name: String) throws -> (shape: [Int], values: [Float]) {
        guard let entry = entries[name] else {
            throw NSError(domain: "safetensors", code: 1, userInfo: [NSLocalizedDescriptionKey: "no tensor \(name)"])
        }
        precondition(entry.dtype == "F32")
        let count = entry.range.count / 4
        var values = [Float](repeating: 0, count: count)
        data.subdata(in: entry.range).withUnsafeBytes { raw in
            for i in 0..<count {
                values[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
            }
        }
        return (entry.shape, values)
    }
}

struct Difference {
    let maxAbs: Float
    let meanAbs: Double

    init(_ a: [Float], _ b: [Float]) {
        precondition(a.count == b.count)
        var maxAbs: Float = 0
        var total = 0.0
        for i in 0..<a.count {
            let d = abs(a[i] - b[i])
            maxAbs = max(maxAbs, d)
            total += Double(d)
        }
        self.maxAbs = maxAbs
        self.meanAbs = total / Double(a.count)
    }
}
