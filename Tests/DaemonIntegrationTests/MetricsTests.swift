import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Daemon
import TestSupport
import XCTest

/// `/metrics` of a running daemon as Prometheus and Grafana see it: `promtool check metrics`
/// passes, and every metric a dashboard panel of `Deploy/grafana` queries exists.
final class MetricsTests: XCTestCase {
    var harness: DaemonHarness!

    override func tearDown() async throws {
        await harness?.tearDown()
        harness = nil
    }

    static func freePort() throws -> Int {
        let relay = try TCPRelay(upstreamPort: 9)  // reserves a free loopback port, never started
        return Int(relay.port)
    }

    func scrape(_ port: Int) async throws -> String {
        let (data, response) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/metrics")!)
        XCTAssertEqual((response as? HTTPURLResponse)?.statusCode, 200)
        return String(decoding: data, as: UTF8.self)
    }

    func testMetricsPassPromtoolAndEveryDashboardMetricExists() async throws {
        harness = try await DaemonHarness()
        let h = harness!
        let port = try Self.freePort()
        try await h.produce((0..<20).map { ("good-\($0)", DaemonHarness.good($0)) } + [(nil, DaemonHarness.bad(0).value), (nil, DaemonHarness.bad(2).value)])
        let daemon = try h.startDaemon(extra: ["--http-port", "\(port)", "--http-host", "127.0.0.1"])
        let done = try await eventually(timeout: .seconds(120), interval: .milliseconds(250)) {
            try await h.count("SELECT (SELECT count(*) FROM records) + (SELECT count(*) FROM failed_records)") >= 22
        }
        XCTAssertTrue(done, h.daemonLogs)
        // One progress tick later the lag gauges are set.
        try await Task.sleep(for: .seconds(2))
        let text = try await scrape(port)
        if let out = ProcessInfo.processInfo.environment["CLIPD_METRICS_SAMPLE"] { try text.write(toFile: out, atomically: true, encoding: .utf8) }

        // promtool, from Debian's prometheus package (Deploy/dev/install-deps.sh installs it).
        let promtool = ["/usr/bin/promtool", "/usr/local/bin/promtool"].first { FileManager.default.isExecutableFile(atPath: $0) }
        if let promtool {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: promtool)
            process.arguments = ["check", "metrics"]
            let input = Pipe(), output = Pipe()
            process.standardInput = input
            process.standardOutput = output
            process.standardError = output
            try process.run()
            input.fileHandleForWriting.write(Data(text.utf8))
            try input.fileHandleForWriting.close()
            let report = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            XCTAssertEqual(process.terminationStatus, 0, "promtool check metrics:\n\(report)")
            XCTAssertEqual(report.trimmingCharacters(in: .whitespacesAndNewlines), "", "promtool check metrics:\n\(report)")
        } else if TestServer.mustRun {
            XCTFail("promtool is not installed (apt-get install prometheus); Deploy/dev/install-deps.sh installs it")
        }

        // Every family has HELP text.
        let families = Set(text.split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("# TYPE ") else { return nil }
            return line.split(separator: " ").dropFirst(2).first.map(String.init)
        })
        let helped = Set(text.split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("# HELP ") else { return nil }
            return line.split(separator: " ").dropFirst(2).first.map(String.init)
        })
        XCTAssertEqual(families.subtracting(helped), [], "metrics without HELP")
        XCTAssertTrue(families.contains("clipd_records_written_total"), text)

        // Every metric a dashboard panel queries is exported (histograms: _bucket/_sum/_count of a family).
        let dashboards = Repository.root.appendingPathComponent("Deploy/grafana")
        let files = try FileManager.default.contentsOfDirectory(atPath: dashboards.path).filter { $0.hasSuffix(".json") }
        XCTAssertFalse(files.isEmpty, "a Grafana dashboard in Deploy/grafana")
        let samples = Set(text.split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap { $0.split(whereSeparator: { $0 == "{" || $0 == " " }).first.map(String.init) })
        for file in files {
            let dashboard = try JSONSerialization.jsonObject(with: Data(contentsOf: dashboards.appendingPathComponent(file))) as? [String: Any]
            let panels = dashboard?["panels"] as? [[String: Any]] ?? []
            XCTAssertFalse(panels.isEmpty, file)
            for panel in panels {
                let exprs = (panel["targets"] as? [[String: Any]] ?? []).compactMap { $0["expr"] as? String }
                XCTAssertFalse(exprs.isEmpty, "panel \(panel["title"] ?? "?") of \(file) queries nothing")
                for expr in exprs {
                    let names = Self.metricNames(in: expr)
                    XCTAssertFalse(names.isEmpty, expr)
                    for name in names {
                        XCTAssertTrue(samples.contains(name) || families.contains(name),
                                      "\(file), panel \(panel["title"] ?? "?"): \(name) is not in /metrics")
                    }
                }
            }
        }
        daemon.stop()
    }

    /// Metric names in a PromQL expression: identifiers starting with clipd_ or kafka_.
    static func metricNames(in expr: String) -> Set<String> {
        let pattern = try! NSRegularExpression(pattern: "\\b(clipd|kafka)_[a-zA-Z0-9_]+")
        let range = NSRange(expr.startIndex..., in: expr)
        return Set(pattern.matches(in: expr, range: range).compactMap { Range($0.range, in: expr).map { String(expr[$0]) } })
    }
}
