import Foundation

/// Politeness per host: at most `concurrency` transfers to one host at a time, at least
/// `minInterval` between the starts of two of them, a server's Retry-After (429/503) holding
/// back every request to that host (not only the URL that got it), and a host that keeps
/// failing (connection errors, timeouts, 5xx) backed off exponentially. Each host has its own
/// state, so a slow or failing host never delays another. Waiting suspends the caller; no
/// thread is held.
actor HostGate {
    struct Policy: Sendable {
        var concurrency: Int
        var minInterval: Duration
        /// Consecutive failures before a host is backed off.
        var failuresBeforeBackoff: Int
        var initialBackoff: Duration
        var maxBackoff: Duration
    }

    private struct Host {
        var active = 0
        var nextStart: ContinuousClock.Instant?
        var blockedUntil: ContinuousClock.Instant?
        var consecutiveFailures = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let policy: Policy
    private var hosts: [String: Host] = [:]
    private let clock = ContinuousClock()

    init(policy: Policy) {
        self.policy = policy
    }

    /// Waits for a slot for `host`; throws when the host is held back past `deadline` (the
    /// caller's retry budget), or when the calling task is cancelled.
    func acquire(_ host: String, deadline: ContinuousClock.Instant) async throws(FetchError) {
        while true {
            let now = clock.now
            var state = hosts[host, default: Host()]
            if let blocked = state.blockedUntil, blocked > now {
                guard blocked <= deadline else {
                    let reason = state.consecutiveFailures >= policy.failuresBeforeBackoff
                        ? "\(state.consecutiveFailures) consecutive failures" : "the server asked to wait (Retry-After)"
                    throw FetchError(.connection, "host \(host) is backed off for \(Self.describe(now.duration(to: blocked))) after \(reason)",
                                     isRetriable: true)
                }
                try await sleep(until: blocked)
                continue
            }
            if state.active >= max(1, policy.concurrency) {
                await withCheckedContinuation { continuation in
                    hosts[host, default: Host()].waiters.append(continuation)
                }
                try checkCancellation()
                continue
            }
            if let next = state.nextStart, next > now {
                try await sleep(until: next)
                continue
            }
            state.active += 1
            state.nextStart = now.advanced(by: policy.minInterval)
            hosts[host] = state
            return
        }
    }

    /// Ends a transfer that `acquire` admitted. `retryAfter` is a server's Retry-After;
    /// `hostFailed` says whether the host itself failed (not a 404 or a too-large body).
    func release(_ host: String, hostFailed: Bool, retryAfter: Duration?) {
        var state = hosts[host, default: Host()]
        state.active = max(0, state.active - 1)
        let now = clock.now
        if hostFailed {
            state.consecutiveFailures += 1
            if state.consecutiveFailures >= policy.failuresBeforeBackoff {
                let doublings = min(state.consecutiveFailures - policy.failuresBeforeBackoff, 16)
                let backoff = min(policy.initialBackoff * (1 << doublings), policy.maxBackoff)
                state.blockedUntil = max(state.blockedUntil ?? now, now.advanced(by: backoff))
            }
        } else {
            state.consecutiveFailures = 0
        }
        if let retryAfter, retryAfter > .zero {
            state.blockedUntil = max(state.blockedUntil ?? now, now.advanced(by: retryAfter))
        }
        if !state.waiters.isEmpty { state.waiters.removeFirst().resume() }
        if state.active == 0 && state.waiters.isEmpty && state.consecutiveFailures == 0
            && (state.blockedUntil.map { $0 <= now } ?? true) && (state.nextStart.map { $0 <= now } ?? true) {
            hosts[host] = nil  // idle hosts hold no memory
        } else {
            hosts[host] = state
        }
    }

    private func sleep(until instant: ContinuousClock.Instant) async throws(FetchError) {
        do { try await Task.sleep(until: instant, clock: clock) } catch {
            throw FetchError(.cancelled, "cancelled while waiting for a host slot")
        }
    }

    private func checkCancellation() throws(FetchError) {
        if Task.isCancelled { throw FetchError(.cancelled, "cancelled while waiting for a host slot") }
    }

    private static func describe(_ d: Duration) -> String {
        String(format: "%.1f s", Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)
    }

    /// The host part of an http(s) URL, lower-cased, with a non-default port (`example.com:8080`).
    nonisolated static func host(of url: String) -> String? {
        guard let separator = url.range(of: "://") else { return nil }
        var authority = url[separator.upperBound...].prefix { !"/?#".contains($0) }
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        let host = authority.lowercased()
        return host.isEmpty ? nil : host
    }
}
