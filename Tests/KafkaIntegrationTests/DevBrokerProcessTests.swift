import Executors
import Foundation
import Kafka
import TestSupport
import Testing

/// `clipd dev-broker` and `clipd publish` as separate processes, with this test process's
/// consumers in one group: the Kafka protocol crossing process boundaries, as the daemon uses it.
/// The processes are TestSupport's `BackgroundProcess`es of the built clipd.
extension KafkaIntegration {
    @Suite struct DevBrokerProcessTests {
        static func freePort() throws -> Int {
            let probe = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(probe) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(probe, $0, length) == 0 ? getsockname(probe, $0, &length) : -1 }
            }
            return Int(UInt16(bigEndian: address.sin_port))
        }

        @Test func consumersInAGroupShareADevBrokerAndPublishFeedsIt() async throws {
            let port = try Self.freePort()
            let broker = try BackgroundProcess(["dev-broker", "--port", String(port), "--brokers", "2", "--partitions", "4", "--topic", "xp"])
            try await waitUntil("the bootstrap address line") { broker.stdout.contains("\n") }
            let bootstrap = String(broker.stdout.prefix { $0 != "\n" })
            #expect(bootstrap == "127.0.0.1:\(port)")

            var configuration = KafkaConsumerConfiguration(bootstrapServers: bootstrap, groupID: "xp", topics: ["xp"])
            configuration.sessionTimeout = .milliseconds(3000)
            configuration.heartbeatInterval = .milliseconds(300)
            configuration.maxPollInterval = .milliseconds(10000)
            configuration.additionalProperties = ["fetch.wait.max.ms": "50"]
            let one = try TestConsumer(name: "one", configuration: configuration)
            let two = try TestConsumer(name: "two", configuration: configuration)
            try await waitUntil("two members splitting 4 partitions") {
                let (a, b) = (await one.assignment(), await two.assignment())
                return a.count == 2 && b.count == 2 && a.isDisjoint(with: b)
            }

            var lines = (0..<100).map { #"{"id": "r\#($0)", "image_url": "https://example.com/\#($0).jpg"}"# }
            lines.insert(#"{"image_url": "gopher://example.com/x"}"#, at: 10)
            lines.insert(#"{"id": 5, "image_url": "https://example.com/x.jpg"}"#, at: 50)
            let publish = try BackgroundProcess(["publish", "--brokers", bootstrap, "--topic", "xp", "-"], stdin: Data(lines.joined(separator: "\n").utf8))
            #expect(try await publish.waitForExit() == 1)
            #expect(publish.stdout == "{\"delivered\":100,\"invalid\":2}\n")
            #expect(publish.stderr.contains("line 11: image_url: scheme \"gopher\" is not supported"))
            #expect(publish.stderr.contains("line 51: id: expected a string, got integer"))

            try await waitUntil("100 records across both members") {
                await one.worker.processed.count + two.worker.processed.count >= 100
            }
            let values = await one.worker.processedValues() + two.worker.processedValues()
            let (countOne, countTwo) = (await one.worker.processed.count, await two.worker.processed.count)
            await one.stop()
            await two.stop()
            #expect(values.count == 100)
            #expect(Set(values).count == 100)
            #expect(countOne > 0 && countTwo > 0)

            broker.process.terminate()  // SIGTERM
            #expect(try await broker.waitForExit() == 0)
        }

        @Test func faultsInjectedThroughStdinDelayButLoseNothing() async throws {
            let broker = try BackgroundProcess(["dev-broker", "--brokers", "2", "--partitions", "2", "--topic", "faults", "--stdin-commands"])
            try await waitUntil("the bootstrap address line") { broker.stdout.contains("\n") }
            let bootstrap = String(broker.stdout.prefix { $0 != "\n" })
            #expect(try await broker.command("leader faults 0 1") == "ok")
            #expect(try await broker.command("leader faults 1 2") == "ok")
            #expect(try await broker.command("broker-down 9").hasPrefix("error: "))
            #expect(try await broker.command("explode").hasPrefix("error: unknown command"))

            var configuration = KafkaProducerConfiguration(bootstrapServers: bootstrap)
            configuration.additionalProperties = ["reconnect.backoff.ms": "50", "reconnect.backoff.max.ms": "500", "retry.backoff.ms": "50"]
            let producer = try KafkaProducer(configuration: configuration, logger: testLogger)
            try await produce(producer, topic: "faults", 0..<10, partition: { Int32($0 % 2) })

            #expect(try await broker.command("broker-down 1") == "ok")
            let delivered = Locked(0)
            let sending = Task {
                let reports = try await produce(producer, topic: "faults", 10..<30, partition: { Int32($0 % 2) })
                delivered.withLock { $0 = reports.count }
                return reports
            }
            #expect(try await broker.command("request-errors produce 6,7") == "ok")
            #expect(delivered.withLock { $0 } == 0, "partition 0's leader is down, so the batch cannot be complete")
            #expect(try await broker.command("broker-up 1") == "ok")
            let reports = try await sending.value
            await producer.shutdown()
            #expect(reports.count == 20)
            // Idempotent retries: each partition's offsets are dense, no duplicates.
            for partition: Int32 in [0, 1] {
                #expect(reports.filter { $0.partition == partition }.map(\.offset).sorted() == Array(5..<15))
            }

            broker.process.terminate()
            #expect(try await broker.waitForExit() == 0)
        }

        @Test func devBrokerRejectsBadArgumentsWithOneClearLine() async throws {
            let child = try BackgroundProcess(["dev-broker", "--brokers", "0"])
            #expect(try await child.waitForExit() != 0)
            #expect(child.stderr.contains("--brokers must be at least 1"))
        }
    }
}
