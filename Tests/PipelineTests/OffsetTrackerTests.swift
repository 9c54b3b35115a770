import XCTest
@testable import Pipeline

final class OffsetTrackerTests: XCTestCase {
    let p0 = TopicPartition("t", 0), p1 = TopicPartition("t", 1)

    func testCommittableIsTheLowestOffsetStillInFlight() {
        let t = OffsetTracker()
        t.assign(p0, next: 10)
        XCTAssertEqual(t.committable(p0), 10)
        for o in 10..<15 { XCTAssertTrue(t.admit(p0, offset: Int64(o))) }
        XCTAssertEqual(t.inFlightCount, 5)
        t.complete(p0, offset: 12)
        t.complete(p0, offset: 11)
        XCTAssertEqual(t.committable(p0), 10, "10 is not done, nothing above it may be committed")
        t.complete(p0, offset: 10)
        XCTAssertEqual(t.committable(p0), 13)
        t.complete(p0, offset: 14)
        XCTAssertEqual(t.committable(p0), 13)
        t.complete(p0, offset: 13)
        XCTAssertEqual(t.committable(p0), 15)
        XCTAssertEqual(t.inFlightCount, 0)
    }

    func testGapsInOffsetsDoNotStall() {
        let t = OffsetTracker()
        t.assign(p0, next: 0)
        t.admit(p0, offset: 0)
        t.admit(p0, offset: 5)   // 1...4 compacted away
        t.complete(p0, offset: 0)
        XCTAssertEqual(t.committable(p0), 5)
        t.complete(p0, offset: 5)
        XCTAssertEqual(t.committable(p0), 6)
    }

    func testRevokedPartitionsAndRedeliveriesAreIgnored() {
        let t = OffsetTracker()
        t.assign(p0, next: 0)
        t.assign(p1, next: 100)
        XCTAssertTrue(t.admit(p0, offset: 0))
        XCTAssertFalse(t.admit(p0, offset: 0), "redelivery of an admitted offset")
        t.revoke(p0)
        XCTAssertFalse(t.complete(p0, offset: 0))
        XCTAssertFalse(t.admit(p0, offset: 1))
        XCTAssertNil(t.committable(p0))
        XCTAssertEqual(t.committableAll(), [p1: 100])
    }

    func testLongRunsStayCompact() {
        let t = OffsetTracker()
        t.assign(p0, next: 0)
        for o in 0..<10_000 {
            t.admit(p0, offset: Int64(o))
            t.complete(p0, offset: Int64(o))
        }
        XCTAssertEqual(t.committable(p0), 10_000)
        XCTAssertEqual(t.inFlightCount, 0)
    }
}

final class BatcherTests: XCTestCase {
    func testFullBatchesAreReleasedImmediately() async {
        let b = Batcher<Int>(maxSize: 3, maxLatency: .seconds(60))
        for i in 0..<7 { await b.add(i) }
        let first = await b.next()
        let second = await b.next()
        XCTAssertEqual(first, [0, 1, 2])
        XCTAssertEqual(second, [3, 4, 5])
        await b.finish()
        let rest = await b.next()
        let end = await b.next()
        XCTAssertEqual(rest, [6])
        XCTAssertNil(end)
    }

    func testPartialBatchWaitsAtMostTheLatency() async {
        let b = Batcher<Int>(maxSize: 100, maxLatency: .milliseconds(50))
        await b.add(1)
        await b.add(2)
        let start = ContinuousClock.now
        let batch = await b.next()
        XCTAssertEqual(batch, [1, 2])
        XCTAssertGreaterThanOrEqual(ContinuousClock.now - start, .milliseconds(30))
    }

    func testWaitingConsumerGetsTheBatchWhenItFills() async {
        let b = Batcher<Int>(maxSize: 2, maxLatency: .seconds(60))
        async let batch = b.next()
        try? await Task.sleep(for: .milliseconds(20))
        await b.add(7)
        await b.add(8)
        let got = await batch
        XCTAssertEqual(got, [7, 8])
    }
}

final class OffsetTrackerCountingTests: XCTestCase {
    func testInFlightCountsRecordsNotYetDoneEvenOutOfOrder() {
        let t = OffsetTracker(), p = TopicPartition("t", 0)
        t.assign(p, next: 0)
        for o in 0..<10 { t.admit(p, offset: Int64(o)) }
        for o in 1..<10 { t.complete(p, offset: Int64(o)) }
        XCTAssertEqual(t.inFlightCount, 1, "nine of ten are done, although 0 blocks the committable offset")
        XCTAssertEqual(t.committable(p), 0)
        t.complete(p, offset: 5)   // a duplicate completion changes nothing
        XCTAssertEqual(t.inFlightCount, 1)
        t.complete(p, offset: 0)
        XCTAssertEqual(t.inFlightCount, 0)
        XCTAssertEqual(t.committable(p), 10)
    }
}
