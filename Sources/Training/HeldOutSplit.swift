import Foundation

/// The deterministic held-out split: a record is held out when the 64-bit FNV-1a hash of its
/// id, finished with SplitMix64's mixer (FNV's high bits barely change between ids such as
/// `sku-1`, `sku-2`), falls in the first `fraction` of the hash range. It never changes for a record, so
/// nothing held out in one run is trained on in the next.
public enum HeldOutSplit {
    public static func isHeldOut(_ recordID: String, fraction: Double) -> Bool {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in recordID.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        hash = (hash ^ (hash >> 30)) &* 0xbf58_476d_1ce4_e5b9
        hash = (hash ^ (hash >> 27)) &* 0x94d0_49bb_1331_11eb
        hash ^= hash >> 31
        return Double(hash >> 11) / Double(UInt64(1) << 53) < fraction
    }
}
