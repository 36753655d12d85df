import { readdirSync, readFileSync } from "node:fs";

for (const f of readdirSync(new URL("./dashboards/", import.meta.url))) {
  JSON.parse(readFileSync(new URL(`./dashboards/${f}`, import.meta.url), "utf8"));
}
