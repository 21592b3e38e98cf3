// Package hubplan holds the roll-out plan and the hub's coverage view:
// how many kiosks and gates each community or village should get, how many
// are provisioned (an agent's birth names the community as its region) and
// how many are online now, rolled up to township, county and city, with the
// roll-out targets (every urban community covered, at least half of the
// rural ones).
//
// The plan is imported from CSV (ParseCSV, firmware-specs/rollout-plan.md
// §2) by "hubd plan import" and stored in a directory (Save, Load). The
// hub's fleet reaches the coverage computation through the Fleet interface
// declared here; FromStore adapts the hub store's agent state (last births and
// health). Handler serves the coverage page, its CSV export and its SVG
// chart, all rendered on the server.
//
// Region codes follow GB/T 2260 (firmware-specs/rollout-plan.md §1): 2
// digits province, 4 city, 6 county, 9 township, 12 community; a parent's
// code is a prefix of its children's.
package hubplan
