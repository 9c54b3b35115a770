import Foundation
import TestSupport
import XCTest

/// Every numeric flag and setting is range-checked before anything starts: a value that is not
/// finite, absurdly large or would overflow is one line of error and exit status 1, never a
/// crash, a hang or an allocation the machine cannot make.
final class FlagRangeCLITests: XCTestCase {
    let db = ["--database-url", "postgres://clipd@127.0.0.1:1/clipd"]

    func assertRefused(_ arguments: [String], environment: [String: String] = [:], mentioning words: [String],
                       file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try runClipd(arguments, environment: environment, stdin: "\"a photo\"\n", timeout: 120)
        XCTAssertEqual(r.status, 1, "\(arguments): \(r.stderr)", file: file, line: line)
        assertCleanFailure(r, mentioning: words, file: file, line: line)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "one line: \(r.stderr)", file: file, line: line)
        XCTAssertEqual(r.stdout, "", file: file, line: line)
    }

    /// The hostile values of the issue.
    func testTheValuesThatCrashedOrHungAreOneLineErrors() throws {
        try assertRefused(["fetch", "--timeout", "inf", "http://127.0.0.1:1/a.jpg"], mentioning: ["--timeout"])
        try assertRefused(["fetch", "--timeout", "nan", "http://127.0.0.1:1/a.jpg"], mentioning: ["--timeout"])
        try assertRefused(["tokenize", "--context-length", "1e9"], mentioning: ["--context-length"])
        try assertRefused(["tokenize", "--context-length", "1000000000"], mentioning: ["--context-length", "1000000000"])
        try assertRefused(["tokenize", "--context-length", "99999999999999999999"], mentioning: ["--context-length"])
        try assertRefused(["embed", "--model", "/nonexistent.safetensors", "--threads", "100000", "--text", "a"], mentioning: ["--threads", "100000"])
        try assertRefused(["run", "--print-config", "--threads", "100000"], mentioning: ["threads"])
        // steps × batch overflows Int: refused with both named.
        try assertRefused(["finetune", "schedule"] + db + ["--steps", "4611686018427387904", "--batch", "4"], mentioning: ["steps"])
        try assertRefused(["finetune", "schedule"] + db + ["--steps", "1000000", "--batch", "4096"], mentioning: ["steps × batch"])
    }

    /// A table of the others.
    func testEveryOtherNumericFlagAndSettingIsRangeChecked() throws {
        let cases: [([String], [String: String], String)] = [
            (["fetch", "--max-bytes", "0", "http://127.0.0.1:1/a.jpg"], [:], "--max-bytes"),
            (["fetch", "--attempts", "1000000", "http://127.0.0.1:1/a.jpg"], [:], "--attempts"),
            (["tokenize", "--bench-seconds", "inf"], [:], "--bench-seconds"),
            (["bench", "--arch", "ViT-B-32", "--batch", "1000000"], [:], "--batch"),
            (["bench", "--arch", "ViT-B-32", "--seconds", "inf"], [:], "--seconds"),
            (["bench", "--arch", "ViT-B-32", "--threads", "0"], [:], "--threads"),
            (["finetune", "bench", "--seconds", "nan"], [:], "--seconds"),
            (["finetune", "bench", "--batch", "100000"], [:], "--batch"),
            (["finetune", "list"] + db + ["--limit", "0"], [:], "--limit"),
            (["finetune", "list"] + db + ["--limit", "10000000"], [:], "--limit"),
            (["finetune", "schedule"] + db + ["--lr", "inf"], [:], "--lr"),
            (["finetune", "schedule"] + db + ["--batch", "1"], [:], "batch"),
            (["finetune", "schedule"] + db + ["--max-pairs", "9223372036854775807"], [:], "max_pairs"),
            (["finetune", "run"] + db + ["--canary", "/nonexistent", "--poll", "inf"], [:], "--poll"),
            (["finetune", "run"] + db + ["--canary", "/nonexistent", "--interval", "-1"], [:], "--interval"),
            (["finetune", "run"] + db + ["--canary", "/nonexistent", "--threads", "100000"], [:], "--threads"),
            (["finetune", "step", "--model", "/nonexistent.safetensors", "--lr", "inf", "--output", "/tmp/x.safetensors",
              "--pixels", "a", "--pixels", "b", "--tokens", "[1]", "--tokens", "[2]"], [:], "--lr"),
            (["finetune", "train-shapes", "--output", "/tmp/clipd-never", "--steps", "0"], [:], "--steps"),
            (["finetune", "train-shapes", "--output", "/tmp/clipd-never", "--vision-layers", "100000"], [:], "--vision-layers"),
            (["migrate"] + db + ["--connect-attempts", "0"], [:], "--connect-attempts"),
            (["dev-broker", "--partitions", "100000"], [:], "--partitions"),
            (["publish", "--brokers", "127.0.0.1:1", "--topic", "t", "--delivery-timeout", "100000", "-"], [:], "--delivery-timeout"),
            (["synth", "--output", "/tmp/clipd-never", "--variants", "100000000"], [:], "--variants"),
            (["preprocess", "--max-pixels", "0", "--output", "/tmp/x.bin", "/nonexistent.jpg"], [:], "--max-pixels"),
            (["classify", "--model", "/nonexistent", "--labels", "a,b", "--top-k", "0", "/nonexistent.jpg"], [:], "--top-k"),
            (["classify", "--model", "/nonexistent", "--labels", "a,b", "--fetch-timeout", "inf", "/nonexistent.jpg"], [:], "--fetch-timeout"),
            (["run", "--print-config", "--max-in-flight", "100000000"], [:], "max_in_flight"),
            (["run", "--print-config", "--batch-latency-ms", "999999999"], [:], "batch_latency_ms"),
            (["run", "--print-config", "--fetch-max-bytes", "99999999999"], [:], "fetch_max_bytes"),
            (["run", "--print-config", "--workers", "100000"], [:], "workers"),
            (["run", "--print-config", "--stop-when-idle", "inf"], [:], "--stop-when-idle"),
            (["run", "--print-config", "--fetch-timeout-seconds", "inf"], [:], "fetch_timeout_seconds"),
            (["run", "--print-config", "--drain-timeout-seconds", "1e9"], [:], "drain_timeout_seconds"),
            (["run", "--print-config"], ["CLIPD_FETCH_TIMEOUT_SECONDS": "inf"], "CLIPD_FETCH_TIMEOUT_SECONDS"),
            (["run", "--print-config"], ["CLIPD_DRAIN_TIMEOUT_SECONDS": "nan"], "CLIPD_DRAIN_TIMEOUT_SECONDS"),
            (["run", "--print-config"], ["CLIPD_PROGRESS_INTERVAL_SECONDS": "1e300"], "progress_interval_seconds"),
            (["run", "--print-config"], ["CLIPD_TOP_K": "100000000"], "top_k"),
            (["run", "--print-config"], ["CLIPD_FETCH_RETRIES": "100000"], "fetch_retries"),
        ]
        for (arguments, environment, flag) in cases {
            try assertRefused(arguments, environment: environment, mentioning: [flag])
        }
    }

    func testValuesInRangeStillWork() throws {
        let r = try runClipd(["tokenize", "--context-length", "5"], stdin: "\"a photo of a cat\"\n")
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "[49406,320,1125,539,49407]\n")
        let config = try runClipd(["run", "--print-config", "--threads", "1024", "--max-in-flight", "1000000"],
                                  environment: ["CLIPD_FETCH_TIMEOUT_SECONDS": "3600"])
        XCTAssertEqual(config.status, 0, config.stderr)
        XCTAssertEqual(jsonObject(config.stdout)["threads"] as? Int, 1024)
    }
}
