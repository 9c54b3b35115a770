import XCTest
@testable import Tensor

final class BLASKernelTests: XCTestCase {
    let cooperlake: Set<String> = ["sse2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd", "avx512_bf16"]

    func testMisdetectedPrescottIsUpgraded() {
        XCTAssertEqual(BLASKernel.fastKernelOverride(detected: "Prescott", cpuFlags: cooperlake), "Cooperlake")
        XCTAssertEqual(BLASKernel.fastKernelOverride(detected: "Prescott", cpuFlags: cooperlake.subtracting(["avx512_bf16"])), "SkylakeX")
        XCTAssertEqual(BLASKernel.fastKernelOverride(detected: "Core2", cpuFlags: ["avx2", "fma"]), "Haswell")
    }

    func testCorrectDetectionIsKept() {
        XCTAssertNil(BLASKernel.fastKernelOverride(detected: "Cooperlake", cpuFlags: cooperlake))
        XCTAssertNil(BLASKernel.fastKernelOverride(detected: "SapphireRapids", cpuFlags: cooperlake))
        XCTAssertNil(BLASKernel.fastKernelOverride(detected: "SomethingNewer", cpuFlags: cooperlake))
        XCTAssertNil(BLASKernel.fastKernelOverride(detected: "Prescott", cpuFlags: ["sse2", "sse3"]))
    }

    func testCpuFlagsAreRead() {
        let flags = BLASKernel.cpuFlags()
        #if arch(x86_64)
        XCTAssertTrue(flags.contains("sse2"), "flags: \(flags.prefix(10))")
        #endif
        XCTAssertFalse(BLASKernel.coreName.isEmpty)
    }
}
