@testable import Kafka
import Testing

/// The consumer's buffer logic without librdkafka: backpressure, revocation, application pauses.
@Suite struct ConsumerStateMachineTests {
    let p0 = KafkaTopicPartition(topic: "t", partition: 0)
    let p1 = KafkaTopicPartition(topic: "t", partition: 1)

    func message(_ partition: KafkaTopicPartition, _ offset: Int64) -> KafkaConsumerEvent {
        .message(KafkaMessage(topic: partition.topic, partition: partition.partition, offset: offset, key: nil, value: []))
    }

    func nextEvent(_ machine: inout ConsumerStateMachine) -> (KafkaConsumerEvent?, [KafkaTopicPartition]) {
        if case .event(let event, let resume) = machine.next() { return (event, resume) }
        return (nil, [])
    }

    @Test func fullBufferPausesFetchingAndDrainingToHalfResumesIt() {
        var machine = ConsumerStateMachine(maxBufferedEvents: 4)
        _ = machine.assign([p0, p1])
        for offset in 0..<3 {
            guard case .none = machine.enqueue(message(p0, Int64(offset))) else { Issue.record("paused early"); return }
        }
        guard case .pauseFetching(let paused) = machine.enqueue(message(p0, 3)) else { Issue.record("did not pause"); return }
        #expect(paused == [p0, p1])
        guard case .none = machine.enqueue(message(p0, 4)) else { Issue.record("paused twice"); return }
        #expect(nextEvent(&machine).1 == [])  // 4 left
        #expect(nextEvent(&machine).1 == [])  // 3 left
        let (event, resumed) = nextEvent(&machine)  // 2 left = half
        #expect(event == message(p0, 2))
        #expect(resumed == [p0, p1])
    }

    @Test func revocationDropsBufferedMessagesOfThosePartitionsOnly() {
        var machine = ConsumerStateMachine(maxBufferedEvents: 100)
        _ = machine.assign([p0, p1])
        for offset in 0..<3 {
            _ = machine.enqueue(message(p0, Int64(offset)))
            _ = machine.enqueue(message(p1, Int64(offset)))
        }
        #expect(machine.revoke([p0]) == 3)
        #expect(machine.assigned == [p1])
        var remaining: [KafkaConsumerEvent] = []
        while let event = nextEvent(&machine).0 { remaining.append(event) }
        #expect(remaining == [message(p1, 0), message(p1, 1), message(p1, 2)])
    }

    @Test func applicationPausesSurviveBackpressureResumes() {
        var machine = ConsumerStateMachine(maxBufferedEvents: 2)
        _ = machine.assign([p0, p1])
        #expect(machine.pauseByApplication([p0, KafkaTopicPartition(topic: "other", partition: 9)]) == [p0])
        _ = machine.enqueue(message(p1, 0))
        guard case .pauseFetching(let paused) = machine.enqueue(message(p1, 1)) else { Issue.record("did not pause"); return }
        #expect(paused == [p1])
        // While backpressure holds, the application's resume waits for it.
        #expect(machine.resumeByApplication([p0]) == [])
        _ = machine.pauseByApplication([p0])
        #expect(nextEvent(&machine).1 == [p1])
        #expect(machine.resumeByApplication([p0]) == [p0])
    }

    @Test func partitionsAssignedDuringBackpressureStartPaused() {
        var machine = ConsumerStateMachine(maxBufferedEvents: 1)
        _ = machine.assign([p0])
        _ = machine.enqueue(message(p0, 0))
        #expect(machine.assign([p1]) == [p1])
    }

    @Test func finishingEndsTheSequenceAfterBufferedEvents() {
        var machine = ConsumerStateMachine(maxBufferedEvents: 10)
        _ = machine.assign([p0])
        _ = machine.enqueue(message(p0, 0))
        #expect(machine.finish(nil) == nil)
        #expect(nextEvent(&machine).0 == message(p0, 0))
        guard case .finished(nil) = machine.next() else { Issue.record("not finished"); return }
        guard case .none = machine.enqueue(message(p0, 1)) else { Issue.record("accepted after finish"); return }
    }
}
