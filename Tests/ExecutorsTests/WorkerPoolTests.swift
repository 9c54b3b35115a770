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
        let pool = WorkerPool(name: "test-named", width: 2)
        let name = await pool.run { () -> String in
            #if os(Linux)
            let comm = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? ""
            return comm.trimmingCharacters(in: .newlines)
            #else
            return Thread.current.name ?? ""
            #endif
        }
        XCTAssertEqual(name, "test-named-1")
    }

    /// Linux keeps 15 bytes of a thread's name: a longer one is cut, not dropped.
    func testLongNamesAreCutToFifteenBytes() async throws {
        let pool = WorkerPool(name: "test-a-rather-long-pool-name", width: 1)
        let name = await pool.run { Thread.current.name ?? "" }
        XCTAssertEqual(name, "test-a-rather-l")
    }

    func testIdleThreadsEnd() async throws {
        let pool = WorkerPool(name: "test-idle", width: 2, idleTimeout: 0.05)
        await pool.run {}
        let deadline = Date().addingTimeInterval(5)
        while pool.threads.current > 0 && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        XCTAssertEqual(pool.threads.current, 0)
    }
}
