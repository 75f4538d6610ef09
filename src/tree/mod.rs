//! The versioned data tree (pure): paths, nodes, stats, ACL evaluation, txns.
