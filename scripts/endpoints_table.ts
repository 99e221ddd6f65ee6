/** @module The table of endpoints printed when the platform has started. */
import { type Config, REGIONS, SERVICES } from "../shared/config/config.ts";

export function endpointsTable(config: Config, mode: "embedded" | "infra"): string {
  const host = config.connectHost;
  const rows: [string, string, string][] = [
    ["edge", "-", `http://${host}:${config.BV_EDGE_PORT}`],
    ["payment gateway (SOAP)", "-", `http://${host}:${config.BV_PAYMENT_GATEWAY_PORT}/soap/payment?wsdl`],
  ];
  for (const region of REGIONS) {
    const r = config.regions[region];
    rows.push(["ingress", region, `http://${host}:${r.ingressPort}`]);
    rows.push(["inventory gRPC", region, `${config.grpcConnectHost}:${r.grpcInventoryPort}`]);
    for (const service of SERVICES) rows.push([service, region, `http://${host}:${r.servicePorts[service]}`]);
    if (mode === "embedded") rows.push(["mqtt (aedes)", region, `mqtt://${host}:${r.embeddedMqttPort}`]);
    else rows.push(["kafka", region, r.kafkaBrokers.join(",")]);
  }
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((row) => row[i].length), 7));
  const line = (cells: string[]) => cells.map((cell, i) => cell.padEnd(widths[i])).join("  ");
  return [
    `BitVelocity (${mode}) — every process has /healthz, /readyz and /metrics`,
    line(["process", "region", "url"]),
    line(widths.map((w) => "-".repeat(w))),
    ...rows.map(line),
  ].join("\n");
}
