"""What the strategies of every task share (common.py: splits, the resolved-config record,
the three transfer kinds of dense tasks). The strategies themselves live in their task's
package (``tasks/<name>/strategies``), registered in that task's ``STRATEGIES``."""
