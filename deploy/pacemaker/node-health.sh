# Pacemaker: a node that stallmon marks red runs no resource.
# stallmon sets the node attribute #health-stallmon (stallmon ... --pacemaker);
# Pacemaker reads every #health-* attribute as the node's health.
# Run once, on any node of the cluster.
crm_attribute --type crm_config --name node-health-strategy --update migrate-on-red
