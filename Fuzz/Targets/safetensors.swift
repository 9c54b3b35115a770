// libFuzzer target: the safetensors reader (header JSON, shapes, offsets) and the Float32
// conversion of every tensor it accepts.
import Foundation
@testable import CLIP

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensors(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Data(bytes: data, count: size)
    guard let parsed = try? SafeTensors.parse(bytes, file: "fuzz.safetensors") else { return 0 }
    for tensor in parsed.tensors.values where tensor.count <= 1 << 20 {
        _ = tensor.floats()
    }
    return 0
}
