import Executors
import Foundation
import XCTest

final class WorkerPoolTests: XCTestCase {
    /// However many jobs wait, no more than `width` threads exist and no more than `width`
    /// jobs run at once; every job runs.
    func testAtMostWidthThreadsExistHoweverManyJobsWait() async throws {
        let pool = WorkerPool(name: "test-pool", width: 3)
        let running = Locked((now: 0, peak: 0))
        let threadNames = Locked(Set<String>())
        try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<200 {
                group.addTask {
                    await pool.run { () -> Int in
                        running.withLock { $0.now += 1; $0.peak = max($0.peak, $0.now) }
                        threadNames.withLock { _ = $0.insert(Thread.current.name ?? "?") }
                        usleep(500)
                        running.withLock { $0.now -= 1 }
                        return i
                    }
                }
            }
            var seen = Set<Int>()
            for try await i in group { seen.insert(i) }
            XCTAssertEqual(seen.count, 200)
        }
        XCTAssertLessThanOrEqual(pool.threads.peak, 3)
        XCTAssertLessThanOrEqual(running.value.peak, 3)
        XCTAssertGreaterThan(running.value.peak, 1, "jobs run in parallel up to the width")
        XCTAssertLessThanOrEqual(threadNames.value.count, 3)
    }

    func testWidthOneRunsJobsInOrderOneAtATime() async throws {
        let pool = WorkerPool(name: "test-serial", width: 1)
        let order = Locked([Int]())
        for i in 0..<20 { await pool.run { order.withLock { $0.append(i) } } }
        XCTAssertEqual(order.value, Array(0..<20))
        XCTAssertEqual(pool.threads.peak, 1)
    }

    func testThrowingJobsRethrowToTheCaller() async {
        struct Boom: Error {}
        let pool = WorkerPool(name: "test-throw", width: 2)
        do {
            _ = try await pool.run { () throws -> Int in throw Boom() }
            XCTFail("expected an error")
        } catch {
            XCTAssertTrue(error is Boom)
        }
    }

    /// The operating system sees the pool's name on its threads (`/proc/<pid>/task/*/comm`,
    /// `top -H`, debuggers), not the name of the thread that started them.
    func testThreadsCarryThePoolNameInTheOperatingSystem() async throws {
        // Many fresh threads: a thread naming itself must not race its creator.
        for i in 0..<20 {
            let pool = WorkerPool(name: "test-named\(i)", width: 2)
            let name = await pool.run { Self.osThreadName() }
            XCTAssertEqual(name, "test-named\(i)-1")
        }
    }

    /// The calling thread's name as the operating system holds it.
    static func osThreadName() -> String {
        #if os(Linux)
        let comm = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? ""
        return comm.trimmingCharacters(in: .newlines)
        #else
        return Thread.current.name ?? ""
        #endif
    }

    /// Linux keeps 15 bytes of a thread's name: a longer one is cut, not dropped.
    func testLongNamesAreCutToFifteenBytes() async throws {
        let pool = WorkerPool(name: "test-a-rather-long-pool-name", width: 1)
        let name = await pool.run { Self.osThreadName() }
        XCTAssertEqual(name, "test-a-rather-l")
    }

    /// A job that has run is released (with what its closure captured) even while other jobs
    /// still wait, i.e. when the queue never runs empty under steady load.
    func testARunJobIsReleasedWhileOtherJobsStillWait() async throws {
        final class Payload: Sendable {}
        let pool = WorkerPool(name: "test-release", width: 1)
        let gate = DispatchSemaphore(value: 0)
        let blockers = Locked(0)
        func waitUntil(_ condition: () -> Bool) async throws {
            let deadline = Date().addingTimeInterval(10)
            while !condition() && Date() < deadline { try await Task.sleep(for: .milliseconds(2)) }
            XCTAssertTrue(condition())
        }
        let first = Task { await pool.run { blockers.withLock { $0 += 1 }; gate.wait() } }
        try await waitUntil { blockers.value == 1 }
        weak var released: Payload?
        let withPayload: Task<Void, Never>
        do {
            let payload = Payload()
            released = payload
            withPayload = Task { [payload] in await pool.run { _ = payload } }
        }
        try await waitUntil { pool.waiting == 1 }
        let second = Task { await pool.run { blockers.withLock { $0 += 1 }; gate.wait() } }
        try await waitUntil { pool.waiting == 2 }
        let third = Task { await pool.run {} }
        try await waitUntil { pool.waiting == 3 }
        gate.signal()  // the first blocker ends; the payload's job runs; the second blocker holds the thread
        try await waitUntil { blockers.value == 2 }
        await withPayload.value
        XCTAssertEqual(pool.waiting, 1, "the third job still waits")
        XCTAssertNil(released, "the payload's job ran and was released")
        gate.signal()
        await first.value
        await second.value
        await third.value
    }

    func testIdleThreadsEnd() async throws {
        let pool = WorkerPool(name: "test-idle", width: 2, idleTimeout: 0.05)
        await pool.run {}
        let deadline = Date().addingTimeInterval(5)
        while pool.threads.current > 0 && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        XCTAssertEqual(pool.threads.current, 0)
    }
}
