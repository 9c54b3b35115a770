import XCTest
@testable import Fetch

final class RetryPolicyTests: XCTestCase {
    private let timeout = FetchError(.timeout, "t")
    private let notFound = FetchError(.notFound, "n", httpStatus: 404)

    func testBackoffGrowsExponentiallyUpToTheCap() {
        let policy = RetryPolicy(initialBackoff: .milliseconds(100), maxBackoff: .milliseconds(500), multiplier: 2, jitter: 0)
        let delays = (1...5).map { policy.backoff(beforeRetry: $0, random: { 0.7 }) }
        XCTAssertEqual(delays, [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(500), .milliseconds(500)])
    }

    func testJitterStaysWithinItsFraction() {
        let policy = RetryPolicy(initialBackoff: .milliseconds(1000), jitter: 0.5)
        XCTAssertEqual(policy.backoff(beforeRetry: 1, random: { 0 }), .milliseconds(1000))
        XCTAssertEqual(policy.backoff(beforeRetry: 1, random: { 0.999999 }).milliseconds, 500)
        let sampled = (0..<200).map { _ in policy.backoff(beforeRetry: 1, random: { Double.random(in: 0..<1) }) }
        XCTAssertTrue(sampled.allSatisfy { $0 > .milliseconds(499) && $0 <= .milliseconds(1000) })
        XCTAssertGreaterThan(Set(sampled).count, 100, "jitter must spread retries")
    }

    func testDecisions() {
        let policy = RetryPolicy(maxAttempts: 3, initialBackoff: .milliseconds(100), jitter: 0,
                                 maxRetryAfter: .seconds(5), totalBudget: .seconds(10))
        XCTAssertEqual(policy.decision(after: 1, error: timeout, retryAfter: nil, elapsed: .zero, random: { 0 }),
                       .retry(after: .milliseconds(100)))
        XCTAssertEqual(policy.decision(after: 2, error: timeout, retryAfter: nil, elapsed: .zero, random: { 0 }),
                       .retry(after: .milliseconds(200)))
        guard case .giveUp = policy.decision(after: 3, error: timeout, retryAfter: nil, elapsed: .zero, random: { 0 }) else {
            return XCTFail("the third failure must be the last")
        }
        guard case .giveUp = policy.decision(after: 1, error: notFound, retryAfter: nil, elapsed: .zero, random: { 0 }) else {
            return XCTFail("404 must not be retried")
        }
        // Retry-After within bounds replaces a shorter backoff; beyond them it ends retrying.
        let tooMany = FetchError(.httpStatus, "429", httpStatus: 429)
        XCTAssertEqual(policy.decision(after: 1, error: tooMany, retryAfter: .seconds(2), elapsed: .zero, random: { 0 }),
                       .retry(after: .seconds(2)))
        guard case .giveUp = policy.decision(after: 1, error: tooMany, retryAfter: .seconds(60), elapsed: .zero, random: { 0 }) else {
            return XCTFail("a long Retry-After must not be waited for")
        }
        // Nothing is scheduled past the budget.
        guard case .giveUp = policy.decision(after: 1, error: timeout, retryAfter: nil, elapsed: .milliseconds(9950), random: { 0 }) else {
            return XCTFail("the budget must bound retries")
        }
    }

    func testWhichErrorsAreRetriable() {
        XCTAssertTrue(FetchError(.httpStatus, "", httpStatus: 503).isRetriable)
        XCTAssertTrue(FetchError(.httpStatus, "", httpStatus: 500).isRetriable)
        XCTAssertTrue(FetchError(.httpStatus, "", httpStatus: 429).isRetriable)
        XCTAssertFalse(FetchError(.httpStatus, "", httpStatus: 403).isRetriable)
        XCTAssertFalse(FetchError(.notFound, "", httpStatus: 404).isRetriable)
        XCTAssertTrue(FetchError(.connection, "").isRetriable)
        XCTAssertTrue(FetchError(.timeout, "").isRetriable)
        for errorClass in [FetchError.Class.badURL, .unsupportedScheme, .forbiddenAddress, .fileNotAllowed, .tooLarge, .tooManyRedirects, .tls, .cancelled] {
            XCTAssertFalse(FetchError(errorClass, "").isRetriable, errorClass.rawValue)
        }
        XCTAssertEqual(FetchError(.tooLarge, "body too big").description, "too_large: body too big")
    }
}
