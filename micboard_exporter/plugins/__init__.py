"""Protocol plugins shipped with micboard-exporter, one subpackage (or module) per protocol family.

Plugins are found through the ``micboard_exporter.plugins`` entry-point group, not by importing this
package, so third-party plugins live in their own distributions.
"""
