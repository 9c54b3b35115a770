// libFuzzer target: the torch.save zip reader (central directory, zip64 fields, stored
// entries), the restricted pickle machine and the strided tensor views it builds.
import Foundation
@testable import CLIP

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTorch(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Data(bytes: data, count: size)
    // The zip with the pickle inside it, and the pickle on its own (most mutations of a zip
    // only break its framing).
    if let tensors = try? TorchCheckpoint.parse(bytes, file: "fuzz.pt") {
        for tensor in tensors.values where tensor.count <= 1 << 20 {
            _ = tensor.floats()
        }
    }
    var machine = PickleMachine(bytes: bytes, file: "fuzz.pkl")
    _ = try? machine.run()
    return 0
}
