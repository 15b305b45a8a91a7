package consumer

// OwnFault is ownFault, for the external tests' table.
var OwnFault = ownFault
