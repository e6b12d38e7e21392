# Pacemaker: RESOURCE (and what is colocated with it) leaves a node that
# stallmon marks red; other resources stay. stallmon sets the node
# attribute ATTRIBUTE (stallmon ... --pacemaker --pacemaker-attribute stallmon).
# Run once, on any node of the cluster:
#   RESOURCE=web ATTRIBUTE=stallmon sh location-rule.sh
cibadmin --create --scope constraints --xml-text "
<rsc_location id='stallmon-${RESOURCE}' rsc='${RESOURCE}'>
  <rule id='stallmon-${RESOURCE}-red' score='-INFINITY'>
    <expression id='stallmon-${RESOURCE}-red-expr' attribute='${ATTRIBUTE}' operation='eq' value='red'/>
  </rule>
</rsc_location>"
