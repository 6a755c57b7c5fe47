#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Writes docs/grafana/flowd.json (run from the repository root): the panels are listed here once, so
# that every query has the same instance filter and rate window. tests/integration/
# grafana_dashboard_test.cpp checks every query with promtool and against a real scrape.
import json
R='$__rate_interval'
I='instance=~"$instance"'
def sel(extra=''):
    return '{'+I+(','+extra if extra else '')+'}'
S=sel()
TAGGED=sel('experiment!="none"')
panels=[]; pid=[0]; y=[0]; x=[0]
DS={"type":"prometheus","uid":"${datasource}"}
def row(title):
    pid[0]+=1
    panels.append({"type":"row","title":title,"id":pid[0],"collapsed":False,
                   "gridPos":{"h":1,"w":24,"x":0,"y":y[0]},"panels":[]})
    y[0]+=1
def panel(title, desc, targets, unit="short", stack=False):
    pid[0]+=1
    if x[0]>=24:
        x[0]=0; y[0]+=8
    panels.append({"type":"timeseries","title":title,"description":desc,"id":pid[0],"datasource":DS,
       "gridPos":{"h":8,"w":12,"x":x[0],"y":y[0]},
       "fieldConfig":{"defaults":{"unit":unit,"custom":{"stacking":{"mode":"normal" if stack else "none"}}},"overrides":[]},
       "options":{"legend":{"displayMode":"table","placement":"bottom","calcs":["lastNotNull","max"]},"tooltip":{"mode":"multi"}},
       "targets":[{"refId":chr(65+i),"expr":e,"legendFormat":l,"datasource":DS} for i,(e,l) in enumerate(targets)]})
    x[0]+=12
def endrow():
    if x[0]>0:
        y[0]+=8; x[0]=0
def rate(m, by=None, s=S):
    inner=f'rate({m}{s}[{R}])'
    return f'sum by ({by}) ({inner})' if by else f'sum({inner})'

row("Flows")
panel("Flow events per plugin","Events published on the bus (flowd_flow_events_total), by plugin and state.",
      [(rate('flowd_flow_events_total','plugin, state'),"{{plugin}} {{state}}")],"ops")
panel("Active flows by experiment and activity","Flows started and not ended (flowd_active_flows), by origin: local (this host), remote (fireflies), observed (exports).",
      [(f'sum by (experiment, activity, origin) (flowd_active_flows{S})',"{{experiment}}/{{activity}} ({{origin}})")],"short",True)
panel("Pipe lines and rejects","Lines read from the named pipe, and lines rejected by reason.",
      [(rate('flowd_np_api_lines_total'),"lines"),
       (rate('flowd_np_api_rejected_lines_total','reason'),"rejected: {{reason}}")],"ops")
panel("Flows forgotten at table bounds","Per-flow tables at their bound: flows forgotten or not tracked (should stay at 0).",
      [(rate('flowd_active_flows_overflow_total','origin'),"active_flows {{origin}}"),
       (rate('flowd_firefly_flows_overflow_total','table'),"firefly {{table}}"),
       (rate('flowd_netflow_flows_overflow_total'),"netflow tracker"),
       (rate('flowd_sflow_flows_overflow_total'),"sflow tracker")],"ops")
endrow()
row("Fireflies")
panel("Fireflies sent","UDP fireflies sent, by destination (the flow's peer, or the collectors).",
      [(rate('flowd_fireflies_sent_total','destination'),"{{destination}}")],"ops")
panel("Fireflies failed and withheld","Send errors by destination; fireflies withheld by the origin rule (never to addresses read from the network).",
      [(rate('flowd_firefly_send_errors_total','destination'),"error: {{destination}}"),
       (rate('flowd_fireflies_suppressed_total','origin, reason'),"withheld: {{origin}} {{reason}}")],"ops")
panel("Fireflies received","Fireflies taken by the firefly plugin, and rejected by reason.",
      [(rate('flowd_firefly_received_total'),"received"),
       (rate('flowd_firefly_rejected_total','reason'),"rejected: {{reason}}")],"ops")
endrow()
row("Queues")
panel("Queue depth per backend","Events waiting in each backend's bounded queue.",
      [(f'max by (backend) (flowd_bus_queue_depth{S})',"{{backend}}")],"short")
panel("Events dropped per backend","Events a full backend queue refused ([flowd] queue_size).",
      [(rate('flowd_bus_dropped_events_total','backend'),"{{backend}}")],"ops")
endrow()
row("Marker (eBPF)")
panel("Marker packets","Packets the tc program saw, marked with a flow label, and could not parse.",
      [(rate('flowd_marker_packets_seen_total'),"seen"),
       (rate('flowd_marker_packets_marked_total'),"marked"),
       (rate('flowd_marker_parse_failures_total'),"parse failures")],"pps")
panel("Marked flows","Flows in the marker's map, and map updates the kernel refused.",
      [(f'sum(flowd_marker_flows{S})',"flows in the map"),
       (rate('flowd_marker_map_update_errors_total'),"map update errors/s")],"short")
endrow()
row("Collector (NetFlow/IPFIX, sFlow)")
panel("Tagged traffic per experiment and activity","Observed traffic carrying a Scitags tag, from exports (octets x 8, scaled by sampling).",
      [(rate('flowd_observed_bytes_total','experiment, activity',TAGGED)+' * 8',"{{experiment}}/{{activity}}")],"bps",True)
panel("Tagged share of observed traffic","Bytes of tagged traffic over all observed bytes.",
      [(rate('flowd_observed_bytes_total',None,TAGGED)+' / '+rate('flowd_observed_bytes_total'),"tagged share")],"percentunit")
panel("Collector rates","Export packets and records per version; sFlow datagrams and flow samples.",
      [(rate('flowd_netflow_packets_total','version'),"packets v{{version}}"),
       (rate('flowd_netflow_records_total','version'),"records v{{version}}"),
       (rate('flowd_sflow_datagrams_total'),"sFlow datagrams"),
       (rate('flowd_sflow_samples_total'),"sFlow flow samples")],"ops")
panel("Collector rates per exporter","Records per exporter and observation domain (NetFlow/IPFIX) and flow samples per sFlow agent and sub-agent; exporters past max_exporter_series are summed under other, and the export packets folded there are counted.",
      [(rate('flowd_netflow_records_total','exporter, observation_domain'),"{{exporter}} {{observation_domain}}"),
       (rate('flowd_sflow_samples_total','agent, sub_agent'),"sFlow {{agent}} {{sub_agent}}"),
       (rate('flowd_netflow_exporters_folded_total'),"packets folded under other"),
       (rate('flowd_sflow_agents_folded_total'),"sFlow datagrams folded under other")],"ops")
panel("Export packets per exporter","Export packets per exporter and observation domain, sFlow datagrams per agent and sub-agent.",
      [(rate('flowd_netflow_packets_total','exporter, observation_domain'),"{{exporter}} {{observation_domain}}"),
       (rate('flowd_sflow_datagrams_total','agent, sub_agent'),"sFlow {{agent}} {{sub_agent}}")],"ops")
panel("Decode errors","Exports refused by the decoders, by reason; datagrams from sources outside allow.",
      [(rate('flowd_netflow_decode_errors_total','version, reason'),"v{{version}} {{reason}}"),
       (rate('flowd_sflow_decode_errors_total','reason'),"sFlow {{reason}}"),
       (rate('flowd_netflow_refused_total','transport'),"not allowed ({{transport}})")],"ops")
panel("Sequence loss per exporter","Records or export packets (NetFlow/IPFIX) and sFlow datagrams lost on the way, from the sequence numbers of each exporter and domain, agent and sub-agent.",
      [(rate('flowd_netflow_sequence_lost_total','exporter, observation_domain'),"{{exporter}} {{observation_domain}}"),
       (rate('flowd_sflow_sequence_lost_total','agent, sub_agent'),"sFlow {{agent}} {{sub_agent}}")],"ops")
panel("Flow labels seen","Every flow label read from exports, by result of the trust check.",
      [(rate('flowd_observed_labels_total','result'),"{{result}}")],"ops")
panel("Templates","Templates held and their bytes; templates evicted at the byte bounds.",
      [(f'sum(flowd_netflow_templates{S})',"templates"),
       (f'sum by (exporter, observation_domain) (flowd_netflow_templates{S})',"templates {{exporter}} {{observation_domain}}"),
       (f'sum(flowd_netflow_template_bytes{S})',"template bytes"),
       (rate('flowd_netflow_templates_evicted_total','reason'),"evicted/s: {{reason}}")],"short")
panel("IPFIX-over-TCP sessions","Open sessions; sessions refused and closed by reason.",
      [(f'sum(flowd_netflow_tcp_sessions{S})',"open"),
       (rate('flowd_netflow_tcp_sessions_refused_total','reason'),"refused: {{reason}}"),
       (rate('flowd_netflow_tcp_sessions_closed_total','reason'),"closed: {{reason}}")],"short")
endrow()
row("Connection scanners")
panel("Scan duration","Time one scan of the kernel's sockets took, per scanner plugin.",
      [(f'max by (plugin) (flowd_scan_duration_seconds{S})',"{{plugin}}")],"s")
panel("Connections seen and tracked","Sockets the last scan saw, and connections reported.",
      [(f'sum by (plugin) (flowd_scan_connections{S})',"seen {{plugin}}"),
       (f'sum by (plugin) (flowd_scan_tracked_connections{S})',"tracked {{plugin}}"),
       (rate('flowd_scan_errors_total','plugin'),"errors/s {{plugin}}")],"short")
endrow()
dash={
 "__inputs":[{"name":"DS_PROMETHEUS","label":"Prometheus","description":"the Prometheus that scrapes flowd","type":"datasource","pluginId":"prometheus","pluginName":"Prometheus"}],
 "__requires":[{"type":"grafana","id":"grafana","name":"Grafana","version":"9.0.0"},{"type":"datasource","id":"prometheus","name":"Prometheus","version":"1.0.0"},{"type":"panel","id":"timeseries","name":"Time series","version":""}],
 "title":"flowd","uid":"flowd-scitags",
 "description":"flowd (Scitags flow and packet marking): flows, fireflies, queues, marker, collector",
 "tags":["flowd","scitags"],"timezone":"browser","schemaVersion":38,"version":1,"editable":True,
 "refresh":"30s","time":{"from":"now-6h","to":"now"},
 "templating":{"list":[
   {"name":"datasource","type":"datasource","query":"prometheus","label":"Data source","current":{}},
   {"name":"instance","type":"query","label":"Instance","datasource":DS,
    "query":{"query":"label_values(flowd_build_info, instance)","refId":"instance"},"definition":"label_values(flowd_build_info, instance)",
    "includeAll":True,"multi":True,"allValue":".*","refresh":2,"current":{}}]},
 "annotations":{"list":[]},
 "panels":panels}
with open('docs/grafana/flowd.json','w') as f:
    json.dump(dash,f,indent=2); f.write('\n')
print(len(panels), sum(len(p.get('targets',[])) for p in panels))
