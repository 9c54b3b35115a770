// libFuzzer target: HTTP API requests (method, path, query, JSON body) through `APIRoute.parse`,
// the validation every API request passes before any work. The first byte picks the method and
// route; the rest is split at the first 0x00 into the query string and the body.
// Invariants: nothing traps; a refusal is one of the API's statuses and its reply is valid JSON;
// an accepted request is within `APILimits`.
import ClipdAPI
import Foundation
import HTTPServer

let limits = APILimits()
let paths = ["/", "/v1/search", "/v1/embeddings", "/v1/classify", "/v1/status", "/v1/records/", "/v1/records/%41/thumbnail", "/v1/x"]
let methods = ["GET", "POST", "HEAD", "PUT"]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    guard count > 0 else { return 0 }
    let bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
    let selector = Int(bytes[0])
    let rest = bytes.dropFirst()
    let split = rest.firstIndex(of: 0) ?? rest.endIndex
    let queryText = String(decoding: rest[rest.startIndex..<split], as: UTF8.self)
    let body = split < rest.endIndex ? Array(rest[(split + 1)...]) : []
    var path = paths[selector % paths.count]
    if path == "/v1/records/" { path += queryText.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? "" }
    let request = HTTPEndpoint.Request(method: methods[(selector / paths.count) % methods.count], path: path,
                                       query: QueryString.parse(queryText) ?? [], body: body)
    guard let result = APIRoute.parse(request, limits: limits) else { return 0 }
    switch result {
    case .failure(let error):
        guard [400, 404, 405, 413].contains(error.status) else { fatalError("unexpected status \(error)") }
        guard (try? JSONSerialization.jsonObject(with: Data(error.reply.body))) is [String: Any] else { fatalError("error reply is not JSON: \(error)") }
    case .success(let route):
        switch route {
        case .search(_, let limit): precondition((1...limits.maxResults).contains(limit))
        case .embeddings(let inputs, _, _): precondition(!inputs.isEmpty && inputs.count <= limits.maxInputs)
        case .classify(_, .adHoc(let labels, let templates), _): precondition(labels.count * templates.count <= limits.maxPrompts)
        default: break
        }
    }
    return 0
}

// Built by SwiftPM (Fuzz/swiftpm.sh), the executable's entry point is renamed to
// `FuzzAPI_main` and `main` is linked to it; this hands control to libFuzzer's driver.
@_silgen_name("LLVMFuzzerRunDriver")
func llvmFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

@_cdecl("FuzzAPI_main")
public func apiFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return llvmFuzzerRunDriver(&argc, &argv) { data, size in
        guard let data else { return 0 }
        return fuzz(UnsafeRawPointer(data), size)
    }
}
