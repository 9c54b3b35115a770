import XCTest
@testable import Fetch

final class AddressPolicyTests: XCTestCase {
    private func reason(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> String? {
        guard let address = IPAddress(text) else {
            XCTFail("unparseable \(text)", file: file, line: line)
            return "unparseable"
        }
        return address.nonPublicReason
    }

    func testNonPublicIPv4IsRecognised() {
        for text in ["127.0.0.1", "127.255.255.254", "10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.255",
                     "192.168.1.1", "169.254.169.254", "169.254.0.1", "0.0.0.0", "0.1.2.3", "100.64.0.1",
                     "100.127.255.255", "224.0.0.1", "239.255.255.250", "255.255.255.255", "192.0.2.5", "198.18.0.1"] {
            XCTAssertNotNil(reason(text), text)
        }
        XCTAssertEqual(reason("169.254.169.254"), "link-local (incl. cloud metadata)")
        XCTAssertEqual(reason("127.0.0.1"), "loopback")
    }

    func testPublicIPv4IsAllowed() {
        // Neighbours of the blocked ranges must stay reachable.
        for text in ["8.8.8.8", "1.1.1.1", "172.15.255.255", "172.32.0.0", "100.63.255.255", "100.128.0.0",
                     "169.253.255.255", "192.167.255.255", "11.0.0.0", "126.255.255.255", "223.255.255.255"] {
            XCTAssertNil(reason(text), text)
        }
    }

    func testIPv6() {
        XCTAssertEqual(reason("::1"), "loopback")
        XCTAssertEqual(reason("::"), "unspecified")
        XCTAssertEqual(reason("fe80::1"), "link-local")
        XCTAssertEqual(reason("febf::1"), "link-local")
        XCTAssertEqual(reason("fc00::1"), "unique-local")
        XCTAssertEqual(reason("fd12:3456::1"), "unique-local")
        XCTAssertEqual(reason("ff02::1"), "multicast")
        XCTAssertNil(reason("2606:4700:4700::1111"))
        XCTAssertNil(reason("2a00:1450:4001:80b::200e"))
    }

    func testIPv6FormsOfForbiddenIPv4AreForbidden() {
        XCTAssertEqual(reason("::ffff:127.0.0.1"), "IPv4-mapped loopback")
        XCTAssertEqual(reason("::ffff:169.254.169.254"), "IPv4-mapped link-local (incl. cloud metadata)")
        XCTAssertEqual(reason("::ffff:a9fe:a9fe"), "IPv4-mapped link-local (incl. cloud metadata)")
        XCTAssertNotNil(reason("::ffff:10.1.2.3"))
        XCTAssertNil(reason("::ffff:8.8.8.8"))
        XCTAssertNotNil(reason("64:ff9b::192.168.0.1"))
        XCTAssertNil(reason("64:ff9b::8.8.8.8"))
        XCTAssertNotNil(reason("2002:7f00:0001::1"))  // 6to4 of 127.0.0.1
        XCTAssertNotNil(reason("::127.0.0.1"))
    }

    func testRangesAndPolicy() throws {
        let loopbackHost = try XCTUnwrap(IPAddressRange(cidr: "127.0.0.1"))
        XCTAssertEqual(loopbackHost.prefixLength, 32)
        XCTAssertTrue(loopbackHost.contains(IPAddress("127.0.0.1")!))
        XCTAssertFalse(loopbackHost.contains(IPAddress("127.0.0.2")!))
        let internalRange = try XCTUnwrap(IPAddressRange(cidr: "10.20.0.0/14"))
        XCTAssertTrue(internalRange.contains(IPAddress("10.23.255.255")!))
        XCTAssertFalse(internalRange.contains(IPAddress("10.24.0.0")!))
        XCTAssertFalse(internalRange.contains(IPAddress("::1")!))
        XCTAssertTrue(IPAddressRange(cidr: "fd00::/8")!.contains(IPAddress("fd99::5")!))
        XCTAssertNil(IPAddressRange(cidr: "10.0.0.0/33"))
        XCTAssertNil(IPAddressRange(cidr: "example.com/8"))
        XCTAssertNil(IPAddressRange(cidr: "10.0.0.0/"))

        let strict = AddressPolicy(allowPrivateNetworks: false, allowedRanges: [])
        XCTAssertNotNil(strict.refusal(for: IPAddress("127.0.0.1")!))
        XCTAssertNil(strict.refusal(for: IPAddress("93.184.216.34")!))
        let withList = AddressPolicy(allowPrivateNetworks: false, allowedRanges: [internalRange, loopbackHost])
        XCTAssertNil(withList.refusal(for: IPAddress("10.21.0.9")!))
        XCTAssertNil(withList.refusal(for: IPAddress("::ffff:127.0.0.1")!))
        XCTAssertNotNil(withList.refusal(for: IPAddress("169.254.169.254")!))
        let open = AddressPolicy(allowPrivateNetworks: true, allowedRanges: [])
        XCTAssertNil(open.refusal(for: IPAddress("169.254.169.254")!))
    }

    func testAddressFormatting() {
        XCTAssertEqual(IPAddress("010.1.2.3").map(String.init(describing:)), nil)  // inet_pton rejects octal-looking forms
        XCTAssertEqual(IPAddress("10.1.2.3")?.description, "10.1.2.3")
        XCTAssertEqual(IPAddress("0:0::1")?.description, "::1")
    }
}
