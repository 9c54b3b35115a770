import Executors

/// What /readyz answers: ready, or why not (starting, connecting, loading the model, draining,
/// or an activated model version that cannot be loaded while the daemon keeps its current one).
public final class HealthState: Sendable {
    private let state = Locked((ready: false, reason: "starting", modelProblem: String?.none))

    public init() {}

    /// Ready when the pipeline runs and no activated model version is failing to load.
    public var isReady: Bool { state.value.ready && state.value.modelProblem == nil }
    public var reason: String { state.value.modelProblem ?? state.value.reason }
    /// Why the active model version is not the one running, while that lasts.
    public var modelProblem: String? { state.value.modelProblem }

    public func set(ready: Bool = false, reason: String) { state.withLock { $0.ready = ready; $0.reason = reason } }

    /// Records (or, with nil, clears) a failure to load the activated model version.
    public func setModelProblem(_ problem: String?) { state.withLock { $0.modelProblem = problem } }
}
