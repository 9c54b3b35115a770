import Foundation

/// A topic partition.
public struct TopicPartition: Hashable, Sendable, CustomStringConvertible {
    public let topic: String
    public let partition: Int32
    public init(_ topic: String, _ partition: Int32) {
        self.topic = topic
        self.partition = partition
    }
    public var description: String { "\(topic)/\(partition)" }
}

/// Which offsets of each assigned partition are done (written, or recorded as failed), so that
/// the offset stored with a batch is always "every record below this is done": the lowest
/// offset still in flight, or one past the highest admitted when nothing is in flight. Offsets
/// Kafka never delivers (compaction, transaction markers) therefore never stall a partition.
public final class OffsetTracker: @unchecked Sendable {
    private struct State {
        var next: Int64                 // committable when nothing is in flight
        var inFlight: [Int64] = []      // admitted offsets in order (Kafka delivers in order)
        var head = 0                    // index of the first not-yet-completed entry
        var completed = Set<Int64>()
        var pending = 0                 // admitted and not yet completed
    }

    private let lock = NSLock()
    private var partitions: [TopicPartition: State] = [:]

    /// The `next` of a partition with no stored offset: the first admitted record decides.
    public static let unknown: Int64 = -1

    public init() {}

    /// Starts tracking a partition whose next record to process is `offset`.
    public func assign(_ tp: TopicPartition, next offset: Int64) {
        lock.withLock { partitions[tp] = State(next: offset) }
    }

    /// Stops tracking; late completions for it are ignored.
    public func revoke(_ tp: TopicPartition) {
        lock.withLock { _ = partitions.removeValue(forKey: tp) }
    }

    public var assigned: Set<TopicPartition> { lock.withLock { Set(partitions.keys) } }

    /// A record entered the pipeline. Returns false if the partition is not assigned (the record
    /// must then be dropped) or the offset was already admitted (a redelivery).
    @discardableResult
    public func admit(_ tp: TopicPartition, offset: Int64) -> Bool {
        lock.withLock {
            guard var s = partitions[tp] else { return false }
            let last = s.inFlight.last ?? (s.next - 1)
            guard offset > last else { return false }
            s.inFlight.append(offset)
            s.pending += 1
            if s.head == s.inFlight.count - 1 { s.next = offset }
            partitions[tp] = s
            return true
        }
    }

    /// A record is done. Returns false if its partition was revoked meanwhile.
    @discardableResult
    public func complete(_ tp: TopicPartition, offset: Int64) -> Bool {
        lock.withLock {
            guard var s = partitions[tp] else { return false }
            let firstPending = s.head < s.inFlight.count ? s.inFlight[s.head] : Int64.max
            if offset >= firstPending, s.completed.insert(offset).inserted { s.pending -= 1 }
            while s.head < s.inFlight.count, s.completed.remove(s.inFlight[s.head]) != nil {
                s.next = s.inFlight[s.head] + 1
                s.head += 1
            }
            if s.head < s.inFlight.count {
                s.next = s.inFlight[s.head]
            }
            if s.head > 1024 && s.head * 2 > s.inFlight.count {
                s.inFlight.removeFirst(s.head)
                s.head = 0
            }
            partitions[tp] = s
            return true
        }
    }

    /// The offset to store for a partition: every record below it is done.
    public func committable(_ tp: TopicPartition) -> Int64? {
        lock.withLock { partitions[tp]?.next }
    }

    public func committableAll() -> [TopicPartition: Int64] {
        lock.withLock { partitions.mapValues(\.next) }
    }

    /// Records admitted and not yet completed, over all partitions.
    public var inFlightCount: Int {
        lock.withLock { partitions.values.reduce(0) { $0 + $1.pending } }
    }
}
