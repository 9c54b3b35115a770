#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 address as raw bytes in network order.
public enum IPAddress: Sendable, Hashable, CustomStringConvertible {
    case v4(UInt32)
    case v6([UInt8])  // exactly 16 bytes

    /// Parses a numeric address ("10.0.0.1", "::1", "::ffff:127.0.0.1"); no DNS.
    public init?(_ text: String) {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            self = .v4(UInt32(bigEndian: v4.s_addr))
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            self = .v6(withUnsafeBytes(of: &v6) { Array($0) })
            return
        }
        return nil
    }

    /// The IPv4 address inside an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`).
    var embeddedMappedV4: IPAddress? {
        guard case .v6(let b) = self, b[0..<10].allSatisfy({ $0 == 0 }), b[10] == 0xFF, b[11] == 0xFF else { return nil }
        return .v4(UInt32(b[12]) << 24 | UInt32(b[13]) << 16 | UInt32(b[14]) << 8 | UInt32(b[15]))
    }

    var bytes: [UInt8] {
        switch self {
        case .v4(let value): return [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
        case .v6(let bytes): return bytes
        }
    }

    public var description: String {
        switch self {
        case .v4:
            return bytes.map(String.init).joined(separator: ".")
        case .v6(let bytes):
            var raw = in6_addr()
            withUnsafeMutableBytes(of: &raw) { $0.copyBytes(from: bytes) }
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            guard inet_ntop(AF_INET6, &raw, &buffer, socklen_t(buffer.count)) != nil else { return "?" }
            return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    /// Why this address is not a public unicast Internet address, or nil when it is.
    ///
    /// IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64 well-known prefix,
    /// 6to4) are judged by the IPv4 address they reach, so `::ffff:169.254.169.254` is as
    /// forbidden as `169.254.169.254`.
    public var nonPublicReason: String? {
        switch self {
        case .v4(let value):
            return Self.reasonV4(value)
        case .v6(let b):
            let embeddedV4 = UInt32(b[12]) << 24 | UInt32(b[13]) << 16 | UInt32(b[14]) << 8 | UInt32(b[15])
            if b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xFF && b[11] == 0xFF {
                return Self.reasonV4(embeddedV4).map { "IPv4-mapped \($0)" }
            }
            if b[0..<15].allSatisfy({ $0 == 0 }) {
                return b[15] == 1 ? "loopback" : (b[15] == 0 ? "unspecified" : "IPv4-compatible (deprecated)")
            }
            if b[0..<12].allSatisfy({ $0 == 0 }) {
                return "IPv4-compatible (deprecated)"
            }
            if b[0..<12] == [0x00, 0x64, 0xFF, 0x9B, 0, 0, 0, 0, 0, 0, 0, 0] {
                return Self.reasonV4(embeddedV4).map { "NAT64 \($0)" }
            }
            if b[0..<6] == [0x00, 0x64, 0xFF, 0x9B, 0x00, 0x01] { return "NAT64 local-use" }
            if b[0] == 0x20 && b[1] == 0x02 {
                let sixToFourV4 = UInt32(b[2]) << 24 | UInt32(b[3]) << 16 | UInt32(b[4]) << 8 | UInt32(b[5])
                return Self.reasonV4(sixToFourV4).map { "6to4 \($0)" }
            }
            if b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x00 && b[3] == 0x00 { return "Teredo tunnel" }
            if b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0D && b[3] == 0xB8 { return "documentation" }
            if b[0] == 0xFE && b[1] & 0xC0 == 0x80 { return "link-local" }
            if b[0] == 0xFE && b[1] & 0xC0 == 0xC0 { return "site-local (deprecated)" }
            if b[0] & 0xFE == 0xFC { return "unique-local" }
            if b[0] == 0xFF { return "multicast" }
            return nil
        }
    }

    private static let nonPublicV4: [(network: UInt32, prefix: Int, reason: String)] = [
        (0x0000_0000, 8, "unspecified / this network"),
        (0x0A00_0000, 8, "private"),
        (0x6440_0000, 10, "carrier-grade NAT"),
        (0x7F00_0000, 8, "loopback"),
        (0xA9FE_0000, 16, "link-local (incl. cloud metadata)"),
        (0xAC10_0000, 12, "private"),
        (0xC000_0000, 24, "IETF protocol assignments"),
        (0xC000_0200, 24, "documentation"),
        (0xC0A8_0000, 16, "private"),
        (0xC612_0000, 15, "benchmarking"),
        (0xC633_6400, 24, "documentation"),
        (0xCB00_7100, 24, "documentation"),
        (0xE000_0000, 4, "multicast"),
        (0xF000_0000, 4, "reserved / broadcast"),
    ]

    private static func reasonV4(_ value: UInt32) -> String? {
        for entry in nonPublicV4 {
            let mask: UInt32 = entry.prefix == 0 ? 0 : ~UInt32(0) << (32 - entry.prefix)
            if value & mask == entry.network { return entry.reason }
        }
        return nil
    }
}

/// A CIDR block ("10.1.0.0/16", "fd00::/8", or a single address) that the SSRF guard lets
/// through even though it is not public, for deployments that fetch from internal hosts.
public struct IPAddressRange: Sendable, Hashable, CustomStringConvertible {
    public let network: IPAddress
    public let prefixLength: Int

    /// Parses "ADDRESS/PREFIX" or a bare address; nil when malformed.
    public init?(cidr: String) {
        let parts = cidr.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2, let address = IPAddress(String(parts[0])) else { return nil }
        let bits = address.bytes.count * 8
        var prefix = bits
        if parts.count == 2 {
            guard let parsed = Int(parts[1]), (0...bits).contains(parsed) else { return nil }
            prefix = parsed
        }
        self.network = address
        self.prefixLength = prefix
    }

    public func contains(_ address: IPAddress) -> Bool {
        let networkBytes = network.bytes, candidate = address.bytes
        guard networkBytes.count == candidate.count else { return false }
        var remaining = prefixLength
        for index in networkBytes.indices where remaining > 0 {
            let take = min(8, remaining)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - take))
            if networkBytes[index] & mask != candidate[index] & mask { return false }
            remaining -= take
        }
        return true
    }

    public var description: String { "\(network)/\(prefixLength)" }
}

/// Decides, at connect time, whether a socket may be opened to an address.
struct AddressPolicy: Sendable {
    var allowPrivateNetworks: Bool
    var allowedRanges: [IPAddressRange]

    /// nil when the connection may proceed; otherwise why it is refused.
    func refusal(for address: IPAddress) -> String? {
        if allowPrivateNetworks { return nil }
        guard let reason = address.nonPublicReason else { return nil }
        let candidates = [address] + (address.embeddedMappedV4.map { [$0] } ?? [])
        if allowedRanges.contains(where: { range in candidates.contains(where: range.contains) }) { return nil }
        return reason
    }
}
