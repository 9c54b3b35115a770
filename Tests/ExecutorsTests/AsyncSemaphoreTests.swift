import Executors
import XCTest

final class AsyncSemaphoreTests: XCTestCase {
    func testNoMoreHoldersThanPermitsAndEveryWaiterRuns() async {
        let semaphore = AsyncSemaphore(permits: 3)
        let gauge = Locked((now: 0, peak: 0, done: 0))
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<40 {
                group.addTask {
                    await semaphore.withPermit {
                        gauge.withLock { $0.now += 1; $0.peak = max($0.peak, $0.now) }
                        try? await Task.sleep(for: .milliseconds(1))
                        gauge.withLock { $0.now -= 1; $0.done += 1 }
                    }
                }
            }
        }
        XCTAssertEqual(gauge.value.done, 40)
        XCTAssertLessThanOrEqual(gauge.value.peak, 3)
        XCTAssertGreaterThan(gauge.value.peak, 0)
        XCTAssertEqual(semaphore.snapshot.available, 3, "every permit returned")
        XCTAssertEqual(semaphore.snapshot.waiting, 0)
    }

    func testWaitersAreServedInOrder() async throws {
        let semaphore = AsyncSemaphore(permits: 1)
        await semaphore.acquire()
        let order = Locked([Int]())
        var tasks: [Task<Void, Never>] = []
        for i in 0..<5 {
            tasks.append(Task { await semaphore.acquire(); order.withLock { $0.append(i) }; semaphore.release() })
            // Each waiter is queued before the next one starts.
            while semaphore.snapshot.waiting < i + 1 { try await Task.sleep(for: .milliseconds(1)) }
        }
        semaphore.release()
        for t in tasks { await t.value }
        XCTAssertEqual(order.value, [0, 1, 2, 3, 4])
    }
}
