/// A validated record ready to send: the line's bytes verbatim, keyed by the record id.
public struct OutgoingRecord: Sendable, Hashable {
    public var lineNumber: Int
    public var key: [UInt8]?
    public var value: [UInt8]
}

/// Where `RecordPublisher` sends records (the Kafka producer in the executable, a fake in unit tests).
public protocol RecordSink: Sendable {
    /// Sends the records and waits until each is delivered or has failed.
    /// Returns, in input order, nil for a delivered record or a description of why it was not.
    func deliver(_ records: [OutgoingRecord]) async -> [String?]
}

/// What happened to each line of a JSON-lines input.
public struct PublishSummary: Sendable, Hashable {
    public struct LineProblem: Sendable, Hashable, CustomStringConvertible {
        public var lineNumber: Int
        public var reason: String
        public var description: String { "line \(lineNumber): \(reason)" }
    }

    public var delivered = 0
    public var invalid: [LineProblem] = []
    public var undelivered: [LineProblem] = []

    public var succeeded: Bool { invalid.isEmpty && undelivered.isEmpty }

    /// The one-line JSON the `publish` command prints.
    public var json: String {
        var text = "{\"delivered\":\(delivered),\"invalid\":\(invalid.count)"
        if !undelivered.isEmpty { text += ",\"undelivered\":\(undelivered.count)" }
        return text + "}"
    }
}

/// Validates JSON lines and publishes the valid ones, keyed by `id` (no id, no key).
/// Blank lines are skipped; line numbers count from 1 and include blank lines.
/// Up to `batchesInFlight` batches await delivery while the next ones are validated and sent.
public struct RecordPublisher: Sendable {
    public var batchSize: Int
    public var batchesInFlight: Int
    public var validator = RecordValidator()

    public init(batchSize: Int = 1000, batchesInFlight: Int = 8) {
        precondition(batchSize > 0 && batchesInFlight > 0)
        self.batchSize = batchSize
        self.batchesInFlight = batchesInFlight
    }

    /// Splits `input` on newlines (a trailing `\r` is dropped) and publishes it.
    /// `onProblem` is told about each invalid or undelivered line as soon as it is known.
    public func publish(
        jsonLines input: [UInt8], to sink: some RecordSink,
        onProblem: (PublishSummary.LineProblem) -> Void = { _ in }
    ) async -> PublishSummary {
        var summary = PublishSummary()
        await withTaskGroup(of: [(lineNumber: Int, failure: String?)].self) { deliveries in
            var inFlight = 0
            func account(_ results: [(lineNumber: Int, failure: String?)]) {
                for (lineNumber, failure) in results {
                    if let failure {
                        let problem = PublishSummary.LineProblem(lineNumber: lineNumber, reason: "not delivered: \(failure)")
                        summary.undelivered.append(problem)
                        onProblem(problem)
                    } else {
                        summary.delivered += 1
                    }
                }
            }
            func send(_ batch: [OutgoingRecord]) async {
                if inFlight == batchesInFlight, let results = await deliveries.next() {
                    inFlight -= 1
                    account(results)
                }
                inFlight += 1
                deliveries.addTask {
                    let failures = await sink.deliver(batch)
                    return zip(batch, failures).map { ($0.lineNumber, $1) }
                }
            }
            var batch: [OutgoingRecord] = []
            var lineNumber = 0
            for rawLine in input.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
                lineNumber += 1
                var line = rawLine
                if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
                if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
                switch validator.validate(line) {
                case .success(let record):
                    batch.append(OutgoingRecord(lineNumber: lineNumber, key: record.id.map { Array($0.utf8) }, value: Array(line)))
                    if batch.count >= batchSize {
                        await send(batch)
                        batch.removeAll(keepingCapacity: true)
                    }
                case .failure(let error):
                    let problem = PublishSummary.LineProblem(lineNumber: lineNumber, reason: error.description)
                    summary.invalid.append(problem)
                    onProblem(problem)
                }
            }
            if !batch.isEmpty { await send(batch) }
            for await results in deliveries { account(results) }
        }
        summary.undelivered.sort { $0.lineNumber < $1.lineNumber }
        return summary
    }
}
