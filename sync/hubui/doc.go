// Package hubui is the hub's fleet dashboard: server-rendered HTML pages
// (html/template, so everything shown is escaped) with a little embedded
// CSS and JavaScript, no build step and nothing loaded from elsewhere.
//
//	GET /ui/                 the agents table: filters (region prefix,
//	                         status, fault, text on id and site), sorting,
//	                         server-side paging (sync/hubfleet)
//	GET /ui/agents/{id}      one agent: status, outbox and uplink, devices
//	                         with health and error counters, doors, the hub's
//	                         coverage, and its recent alarms, device and
//	                         access records, masked
//	GET /ui/events           Server-Sent Events: "row" (a changed agents
//	                         table row, ?rows=id,id… limits them) and "agent"
//	                         (the live part of ?agent=id's page), each as
//	                         JSON {"id":…, "html":…} rendered by the same
//	                         templates as the pages
//	GET /ui/assets/…         the CSS and JavaScript
//
// Labels are Chinese and English ("在线 Online"). The clock offset column
// shows the offset the agent last measured against the hub (health
// "clock"; the hub's clock ahead of the agent's), marked when the agent
// found it beyond its bound; blank for agents that do not report one.
//
// Live rows are patched in place, only the cells that changed (so the
// link to an agent is not replaced under a click): a row that no longer
// matches the page's filters (an agent that went offline on an "online"
// page) stays in place, dimmed and marked "nomatch", until the page is
// reloaded; the totals are not live. Pages are sent with a
// Content-Security-Policy of 'self' only.
//
// Stable hooks for scripts and the browser test (cmd/hubd): the agents
// table is table#agents with data-region, data-status and data-fault (the filters
// shown); each row tr#row-<id> has data-region, data-status
// (online/offline/unknown) and data-faults (a count); the agent page has
// div#agent[data-agent], #agent-status[data-status] and a row per device
// with data-device and data-connected (true/false).
//
// Personal data. Records are read through the hub's records view
// (hub.Hub.Records), never revealed: sealed fields are shown as the hub
// masks them, or as "(sealed)" when the hub cannot open them. On top of
// that the page shortens credential hashes (fields named cred or *hash*)
// and hides the value of any plain field whose name says it holds a
// number, name or ID (number, id_number, name, card, phone…), in case an
// agent put one in the clear.
package hubui
