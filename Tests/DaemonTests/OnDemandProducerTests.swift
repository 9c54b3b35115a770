@testable import Daemon
import Foundation
import Kafka
import Logging
import XCTest

/// The dead-letter producer (and its librdkafka threads) exists only once a dead letter is sent.
final class OnDemandProducerTests: XCTestCase {
    private func makeProducer() -> OnDemandProducer {
        // Nothing listens on port 1: librdkafka connects in the background, and nothing here sends.
        OnDemandProducer(configuration: KafkaProducerConfiguration(bootstrapServers: "127.0.0.1:1"),
                         logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    func testCreatedOnFirstUseOnlyAndOnce() async throws {
        let producer = makeProducer()
        XCTAssertFalse(producer.isCreated)
        let first = try producer.producer()
        XCTAssertTrue(producer.isCreated)
        XCTAssertTrue(first === (try producer.producer()))
        await producer.shutdown()
        XCTAssertFalse(producer.isCreated)
        XCTAssertThrowsError(try producer.producer())
    }

    func testShutdownWithoutADeadLetterCreatesNothing() async {
        let producer = makeProducer()
        await producer.shutdown()
        XCTAssertFalse(producer.isCreated)
        XCTAssertThrowsError(try producer.producer(), "no producer is created after shutdown")
    }
}
