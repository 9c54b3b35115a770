// libFuzzer target: the Kafka record validator (JSON parsing and the record schema's rules).
// A record it accepts must be accepted again, unchanged, after a round trip through JSON
// Numbers are compared as numbers to 12 significant digits: JSONEncoder writes the double 5.0
// as 5 (read back as an integer) and rewrites long literals (Fuzz/findings/record-*.json).
import Foundation
import Records

let validator = RecordValidator()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRecord(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    switch validator.validate(bytes) {
    case .success(let record):
        guard let encoded = try? JSONEncoder().encode(record) else { fatalError("a valid record does not encode") }
        guard case .success(let again) = validator.validate(Array(encoded)), equivalent(again, record) else {
            fatalError("a valid record does not survive a JSON round trip: \(record)")
        }
    case .failure(let error):
        _ = error.description
    }
    return 0
}

func equivalent(_ a: Record, _ b: Record) -> Bool {
    guard a.id == b.id, a.imageURL == b.imageURL, a.caption == b.caption, a.labelSet == b.labelSet else { return false }
    switch (a.metadata, b.metadata) {
    case (nil, nil): return true
    case (let x?, let y?): return equivalent(.object(x), .object(y))
    default: return false
    }
}

func equivalent(_ a: JSONValue, _ b: JSONValue) -> Bool {
    func number(_ v: JSONValue) -> Double? {
        switch v {
        case .integer(let i): return Double(i)
        case .number(let d): return d
        default: return nil
        }
    }
    if let x = number(a), let y = number(b) { return x == y || abs(x - y) <= 1e-12 * max(abs(x), abs(y)) }
    switch (a, b) {
    case (.array(let x), .array(let y)): return x.count == y.count && zip(x, y).allSatisfy { equivalent($0, $1) }
    case (.object(let x), .object(let y)):
        return x.count == y.count && x.allSatisfy { key, value in y[key].map { equivalent(value, $0) } ?? false }
    default: return a == b
    }
}
