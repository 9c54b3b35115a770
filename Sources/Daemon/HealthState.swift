import Executors

/// What /readyz answers: ready, or why not (starting, connecting, loading the model, draining).
public final class HealthState: Sendable {
    private let state = Locked((ready: false, reason: "starting"))

    public init() {}

    public var isReady: Bool { state.value.ready }
    public var reason: String { state.value.reason }

    public func set(ready: Bool = false, reason: String) { state.withLock { $0 = (ready, reason) } }
}
