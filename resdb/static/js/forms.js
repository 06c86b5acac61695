/* Forms: after a refused submit, focus moves to the error summary (its links lead to the fields). */
(function () {
  "use strict";
  var summary = document.getElementById("form-problems");
  if (summary) { summary.focus(); }
}());
