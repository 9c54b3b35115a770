// libFuzzer target: the Kafka record validator (JSON parsing and the record schema's rules).
// A record it accepts must be accepted again, unchanged, after a round trip through JSON
// (numbers compared as numbers: JSONEncoder writes the double 5.0 as 5, read back as an integer).
import Foundation
import Records

let validator = RecordValidator()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRecord(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    switch validator.validate(bytes) {
    case .success(let record):
        guard let encoded = try? JSONEncoder().encode(record) else { fatalError("a valid record does not encode") }
        guard case .success(let again) = validator.validate(Array(encoded)), normalized(again) == normalized(record) else {
            fatalError("a valid record does not survive a JSON round trip: \(record)")
        }
    case .failure(let error):
        _ = error.description
    }
    return 0
}

func normalized(_ record: Record) -> Record {
    var r = record
    r.metadata = record.metadata?.mapValues(normalized)
    return r
}

func normalized(_ value: JSONValue) -> JSONValue {
    switch value {
    case .integer(let i): return .number(Double(i))
    case .array(let a): return .array(a.map(normalized))
    case .object(let o): return .object(o.mapValues(normalized))
    default: return value
    }
}
