"""The Flask experiment server (BubbleView, CodeCharts, questionnaires). Filled by a later issue."""
