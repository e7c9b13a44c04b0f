// Chinese by default, English on request (kept in localStorage). Problem type names are not
// written here: they come from the taxonomy the server serves (GET /v1/model), so the page and
// the ledger can never disagree about what a type is called.

const STORAGE_KEY = "envwatch.lang";

const STRINGS = {
  "zh-CN": {
    app: "envwatch 巡查", skip: "跳到正文", navLabel: "主导航", switchTo: "English", switchLabel: "Switch to English",
    navUpload: "上传照片", navLedger: "问题台账", navMap: "地图", navSummary: "汇总", navJobs: "批量任务",
    signOut: "退出", roleAdmin: "管理员", roleInspector: "巡查员", roleIntegration: "只读接入",
    signInTitle: "登录", signInKey: "API 密钥", signInSubmit: "登录",
    signInHelp: "密钥由管理员发放。服务首次启动时会在日志中打印一次本地管理员密钥。密钥只保存在本浏览器标签页中，关闭即清除。",
    signInBad: "密钥无效或已被吊销。", sessionExpired: "登录已失效，请重新登录。",
    loading: "加载中…", error: "出错了", retry: "重试", notAllowed: "当前密钥没有此操作的权限。",
    notFound: "找不到该页面。", modelNotReady: "模型尚未加载，暂时无法检测。",
    uploadTitle: "上传巡查照片", dropHint: "或从相册、文件中选择照片（可多选），也可拖到这里", chooseFiles: "选择照片",
    chosen: "已选 {n} 张照片", clearChosen: "清空", region: "区县", township: "乡镇", village: "村", note: "备注",
    inspector: "巡查人", placeLegend: "地点（可选）", uploadSubmit: "上传并检测", uploading: "上传中",
    scoring: "检测中", done: "完成", failed: "失败", noFiles: "请先选择照片。",
    busyRetry: "服务器繁忙，{s} 秒后重试…", fileProblems: "发现 {n} 个问题", fileNoProblems: "未发现问题",
    results: "检测结果", inspection: "巡查 #{id}", viewInLedger: "在台账中查看这些问题",
    photo: "照片", problems: "问题", score: "置信度", status: "状态", type: "类型", label: "检测标签",
    extent: "定位方式", extentBox: "检测框", extentPhoto: "整张照片（未定位）", extentApprox: "大致位置（由照片标注学得）",
    photoLabelsTitle: "照片标注", photoLabelsHelp: "不画框，只说这张照片是否有某类问题：新问题类型从这些标注中学习。",
    photoShows: "有此问题", photoNotShows: "没有此问题", photoLabelled: "已记录标注", photoLabelDelete: "删除",
    shownModel: "当时模型 {v}", uncertainTitle: "下一步标注哪些照片",
    uncertainHelp: "按目前的标注，模型对这些未标注照片最拿不准：先标注它们，每个标注学到的最多。",
    uncertainShow: "列出照片", uncertainCount: "依据 {p} 张有、{n} 张没有的标注，共评估 {c} 张未标注照片。",
    learnTitle: "学习新问题类型", learnHelp: "为标注足够的类型（有、没有各至少 8 张照片）在当前模型上学习，生成新版本；先看交叉验证结果，再决定是否启用。",
    learnSubmit: "学习", rollbackSubmit: "回退到上一版本", learning: "学习中…",
    learnedVersion: "已生成新版本 {v}（基于 {b}），尚未启用。", learnedNote: "交叉验证结果来自标注照片本身，阈值也在其上选定，偏乐观。",
    promoteVersion: "启用 {v}", servingNow: "当前使用模型：{v}", threshold: "阈值", cvRecall: "交叉验证检出率", cvFalseAlarms: "交叉验证误报率",
    warnings: "提示",
    ledgerTitle: "问题台账", filters: "筛选", all: "全部", from: "起始日期", to: "截止日期", apply: "筛选",
    reset: "清除筛选", exportCsv: "导出 CSV", id: "编号", place: "地点", observed: "拍摄/上传时间",
    total: "共 {n} 条", page: "第 {p} / {n} 页", prev: "上一页", next: "下一页", none: "没有符合条件的问题。",
    sortBy: "按{col}排序",
    inspectionFilter: "仅巡查 #{id}",
    findingTitle: "问题 #{id}", details: "详情", history: "处理记录", actions: "处理",
    before: "整改前", after: "整改后（复查照片）", stillSeen: "复查照片上仍检测到 {n} 个问题：",
    noneSeen: "复查照片上未检测到问题。", captured: "拍摄时间", created: "发现时间", gps: "位置",
    model: "模型版本", onMap: "在地图上查看", openInspection: "查看所属巡查", noActions: "该问题已结束，无需处理。",
    readOnly: "只读密钥，不能处理问题。", actionNote: "处理说明（可选）", followupPhoto: "复查照片（可选，将被检测）",
    actConfirm: "确认问题", actDismiss: "驳回（误报）", actOrder: "下达整改", actRectified: "标记已整改",
    actClose: "复查通过，销号", actRecheckFailed: "复查不合格，重新整改", moved: "状态已改为：{s}",
    at: "时间", change: "变更", actor: "操作人", followup: "复查照片", raised: "系统发现",
    mapTitle: "问题地图", mapHint: "只显示有位置的问题（照片 GPS，或照片没有 GPS 时的手机定位）；点击圆点打开问题。离线绘制，不加载任何在线底图。",
    mapCount: "{n} 个带定位的问题", mapEmpty: "没有带定位的问题。", legendType: "类型（填充色）",
    legendStatus: "状态（外圈颜色）", mapLabel: "带定位的问题分布图", north: "北",
    summaryTitle: "分区汇总", allRegions: "全部地区", noRegion: "（未填地区）", byType: "按类型",
    byStatus: "按状态", rectifiedCount: "已整改 {n} 个", medianDays: "整改用时中位数 {d} 天",
    noMedian: "尚无整改", findingsCount: "{n} 个问题",
    jobsTitle: "批量任务", jobZip: "无人机照片压缩包（.zip）", jobSubmit: "开始批量检测", jobProgress: "已处理 {p} / {n}，失败 {f}",
    jobCancel: "取消任务", jobResults: "查看结果", jobsRecent: "最近的任务", jobsNone: "还没有批量任务。",
    jobTile: "分块检测（大图中的小目标）", jobTile_auto: "自动：航拍大图分块", jobTile_on: "总是分块", jobTile_off: "不分块（整图缩放）",
    jobStatus_queued: "排队中", jobStatus_running: "进行中", jobStatus_done: "已完成", jobStatus_cancelled: "已取消",
    status_candidate: "待确认", status_confirmed: "已确认", status_dismissed: "已驳回",
    status_rectification_ordered: "整改中", status_rectified: "已整改", status_closed: "已销号",
    navLabels: "标注", labelsTitle: "人工标注（{n}）", labelsLegend: "虚线框（✎）是人画的标注，实线框是模型发现的问题。",
    labelsNone: "这张照片还没有人工标注。", labelMode: "标注模式", labelNewBox: "新建标注框", labelFixButton: "修正框 / 类型",
    labelHelp: "开启标注模式后，在照片上拖动即可画框；拖动框或它的四角可移动、调整大小，在别处重新拖动可重画。键盘：按“新建标注框”，用方向键移动，Ctrl+方向键调整大小（按住 Shift 步长加大），Enter 转到类型，Esc 取消；也可直接输入坐标。",
    labelNew: "新标注", labelEdit: "编辑标注 #{id}", labelFix: "修正问题 #{id}", labelChooseType: "请选择问题类型",
    typesDetectable: "模型可检测", typesNotDetectable: "模型尚不能检测", labelBoxPx: "框（像素，照片为 {w}×{h}）",
    labelNote: "备注（可选）", labelSave: "保存标注", labelCancel: "取消", labelEditButton: "编辑", labelDelete: "删除",
    labelDeleteConfirm: "确定删除这个标注？", labelDeleteYes: "确认删除", labelDeleteNo: "保留",
    labelSaved: "已保存标注 #{id}", labelDeleted: "已删除标注 #{id}", labelNeedType: "请先选择问题类型。",
    labelBadCoords: "坐标必须是数字。", labelBoxAt: "标注框 {x1},{y1} – {x2},{y2}",
    source: "来源", source_manual: "人工画框", source_correction: "修正", source_label_studio: "Label Studio 导入",
    labelsScreen: "标注数据", labelsTotal: "共 {n} 个标注", labelsPerType: "各类型的训练数据", positives: "标注框",
    hardNegatives: "负样本（已驳回）", photosCount: "照片", reviewedImages: "已审核照片 {n} 张", detectable: "模型",
    exportsTitle: "导出与导入", exportYolo: "导出 YOLO 数据集（zip）", exportLabelStudio: "导出 Label Studio 任务（JSON）",
    imagePrefix: "Label Studio 图片地址前缀（可选）", importFile: "Label Studio 导出文件（JSON）", importSubmit: "导入",
    importResult: "新建 {c}，更新 {u}，未变 {n}，跳过 {s}", importBadFile: "不是有效的 JSON 文件。", labelsListTitle: "标注列表",
    labelBox: "框", labelBy: "标注人", photoTitle: "照片 #{id}", labelsOfPhoto: "查看照片 #{id}", noneLabels: "没有符合条件的标注。",
    navBulletin: "周通报", bulletinTitle: "周通报", bulletinChoose: "选择通报", bulletinPeriod: "周次", bulletinTownship: "乡镇（可选，留空为全县）",
    bulletinShow: "生成通报", bulletinPick: "选择周次和区县后生成通报。", bulletinMeta: "{first} 至 {last}（{zone}），统计截至 {asOf}",
    bulletinPrintable: "下载打印版（HTML，A4）", exportXlsx: "导出 Excel", bulletinEmpty: "本期该地区没有新发现、整改或超期的问题记录。",
    bulletinNewTitle: "一、新发现问题", bulletinRectTitle: "二、整改情况", bulletinRecTitle: "三、反弹问题", bulletinRanking: "四、乡镇排名",
    bulletinPhotos: "五、典型问题照片", bulletinNew: "本期新发现问题 {n} 个。", bulletinAwaiting: "另有 {n} 个疑似问题待核实，未计入。",
    bulletinNoTownship: "（未填乡镇）", bulletinTotal: "合计", bulletinRectifiedAt: "整改时间",
    bulletinRectified: "按期整改 {o} 个，逾期整改 {l} 个，仍超期未整改 {d} 个。", bulletinLateList: "逾期整改", bulletinOverdueList: "超期未整改",
    bulletinRecurrences: "本期反弹问题 {n} 个。", bulletinNewlyRanked: "新上榜", bulletinNoRanking: "没有可排名的乡镇。", bulletinNoPhotos: "本期没有典型问题照片。",
    rank: "名次", rankScore: "得分", rankChange: "名次变化", rankProblems: "新发现问题", rankVillages: "村数", rankPerVillage: "每村问题",
    rankOnTime: "按期整改", rankLate: "逾期整改", rankOverdue: "超期未改", rankRate: "按期整改率", rankRecurrences: "反弹",
    rankFormula: "得分 = {a} × 按期整改率 − {b} × 每村问题数 − {c} × 超期未改数 − {d} × 反弹数；按期整改率 = 按期整改 ÷（按期整改 + 逾期整改 + 超期未改），三者皆无时为 100%。得分相同名次并列。",
    deadline: "整改时限", deadlineField: "整改时限（可选）", deadlineHelp: "留空则按问题类型的默认天数。", overdue: "超期", rectifiedLate: "逾期整改",
    recurrence: "反弹", recurrenceOf: "反弹自", filterOverdue: "超期", filterRecurrence: "反弹", yes: "是", no: "否",
    overdueCount: "超期未改 {n} 个", lateCount: "逾期整改 {n} 个",
    navQueue: "待上传", cameraHint: "拍照（手机相机）", keptHint: "照片先保存在本设备上，能连上服务器时自动上传；没有信号也可以继续拍。",
    queueLink: "查看待传照片", keptHere: "已保存在本设备，等待上传", waitingForServer: "等待连接服务器", locating: "正在获取手机位置…",
    keptCount: "{n} 张照片已保存在本设备", unreachable: "连不上服务器（没有网络，或服务器未运行）",
    refused_empty: "空文件", refused_too_large: "文件太大", refused_invalid_image: "不是可用的照片", refused_request_too_large: "文件太大",
    positionNone: "没有手机定位（照片自带 GPS 时用照片的）", positionDevice: "手机定位 {where}（±{m} 米）；照片自带 GPS 时以照片为准",
    queueTitle: "待传照片", queueHelp: "拍摄或选择的照片先保存在本设备上（关闭页面、重启手机都不会丢失），能连上服务器时自动逐张上传，每张只检测一次。服务器拒收的照片会写明原因，可以删除。退出登录后照片仍保留，下次登录后继续上传。",
    queueSendNow: "立即上传", queueClearSent: "清除已上传记录", queueCounts: "等待 {w} · 已上传 {s} · 被拒收 {f}",
    queueOffline: "当前离线，联网后自动上传。", queueSending: "正在上传…", queueNextTry: "连不上服务器，{s} 秒后重试。",
    queueAllSent: "没有等待上传的照片。", queueEmpty: "本设备上没有照片。", queue_waiting: "等待上传", queue_sending: "上传中",
    queue_sent: "已上传", queue_failed: "被拒收", queueRefused: "服务器拒收", queueSentAt: "{at} 已上传",
    queueLastTry: "（已尝试 {n} 次：{why}）", queuedAt: "保存于", queueDelete: "删除",
    queueDeleteConfirm: "从本设备删除这张尚未上传的照片？", queueDeleteYes: "确认删除", queueForget: "移出列表", queueDeleted: "已删除 {name}",
    gpsPhoto: "照片 GPS", gpsDevice: "手机定位，±{m} 米", legendPosition: "位置来源", mapPhotoGps: "照片 GPS（实心点）",
    mapDevice: "手机定位（虚线圈：定位精度范围）", keepFailed: "照片未能保存在本设备（存储空间已满？），没有上传：{why}",
  },
  en: {
    app: "envwatch inspection", skip: "Skip to content", navLabel: "Main", switchTo: "中文", switchLabel: "切换到中文",
    navUpload: "Upload", navLedger: "Findings", navMap: "Map", navSummary: "Summary", navJobs: "Batch jobs",
    signOut: "Sign out", roleAdmin: "admin", roleInspector: "inspector", roleIntegration: "read-only",
    signInTitle: "Sign in", signInKey: "API key", signInSubmit: "Sign in",
    signInHelp: "Keys are issued by an administrator. On its first start the service logs a local admin key once. The key is kept only in this browser tab and is gone when it closes.",
    signInBad: "The key is unknown or revoked.", sessionExpired: "Your session has expired; sign in again.",
    loading: "Loading…", error: "Something went wrong", retry: "Retry", notAllowed: "This key may not do that.",
    notFound: "No such page.", modelNotReady: "The model is not loaded yet; photos cannot be scored now.",
    uploadTitle: "Upload inspection photos", dropHint: "Or choose photos from the gallery or files (several at once), or drop them here", chooseFiles: "Choose photos",
    chosen: "{n} photos chosen", clearChosen: "Clear", region: "County", township: "Township", village: "Village", note: "Note",
    inspector: "Inspector", placeLegend: "Place (optional)", uploadSubmit: "Upload and check", uploading: "Uploading",
    scoring: "Checking", done: "Done", failed: "Failed", noFiles: "Choose photos first.",
    busyRetry: "The server is busy; retrying in {s} s…", fileProblems: "{n} problems found", fileNoProblems: "No problems found",
    results: "Results", inspection: "Inspection #{id}", viewInLedger: "See these findings in the ledger",
    photo: "Photo", problems: "Problems", score: "Score", status: "Status", type: "Type", label: "Detector label",
    extent: "Located by", extentBox: "the detector's box", extentPhoto: "whole photo (not located)", extentApprox: "approximate location (learned from photo labels)",
    photoLabelsTitle: "Photo labels", photoLabelsHelp: "No box: say whether this photo shows a problem type. New types are learned from these labels.",
    photoShows: "Shows it", photoNotShows: "Does not show it", photoLabelled: "Label recorded", photoLabelDelete: "Delete",
    shownModel: "model then {v}", uncertainTitle: "Which photos to label next",
    uncertainHelp: "Given the labels so far, these unlabelled photos are the ones the model is least sure of: labelling them teaches the most.",
    uncertainShow: "List photos", uncertainCount: "From {p} photos labelled showing it and {n} not; {c} unlabelled photos scored.",
    learnTitle: "Learn new problem types", learnHelp: "Learns every type with enough photo labels (at least 8 photos showing it and 8 not) on the serving model, as a new version: read the cross-validated numbers before promoting it.",
    learnSubmit: "Learn", rollbackSubmit: "Roll back to the previous version", learning: "Learning…",
    learnedVersion: "New version {v} (on {b}), not promoted yet.", learnedNote: "Cross-validated on the labelled photos themselves, with the threshold chosen on them: optimistic.",
    promoteVersion: "Promote {v}", servingNow: "Serving: {v}", threshold: "Threshold", cvRecall: "CV recall", cvFalseAlarms: "CV false alarms",
    warnings: "Notes",
    ledgerTitle: "Findings ledger", filters: "Filters", all: "All", from: "From", to: "To", apply: "Apply",
    reset: "Clear filters", exportCsv: "Export CSV", id: "No.", place: "Place", observed: "Observed",
    total: "{n} in all", page: "Page {p} of {n}", prev: "Previous", next: "Next", none: "No findings match.",
    sortBy: "Sort by {col}",
    inspectionFilter: "Inspection #{id} only",
    findingTitle: "Finding #{id}", details: "Details", history: "History", actions: "Review",
    before: "Before", after: "After (follow-up photo)", stillSeen: "The follow-up photo still shows {n} problems:",
    noneSeen: "No problem detected on the follow-up photo.", captured: "Captured", created: "Raised", gps: "Location",
    model: "Model version", onMap: "Show on map", openInspection: "Open its inspection", noActions: "This finding is finished; nothing to do.",
    readOnly: "Read-only key: findings cannot be reviewed.", actionNote: "Note (optional)", followupPhoto: "Follow-up photo (optional, will be checked)",
    actConfirm: "Confirm", actDismiss: "Dismiss (false alarm)", actOrder: "Order rectification", actRectified: "Mark rectified",
    actClose: "Re-check passed: close", actRecheckFailed: "Re-check failed: rectify again", moved: "Status is now: {s}",
    at: "Time", change: "Change", actor: "By", followup: "Follow-up photo", raised: "raised by the system",
    mapTitle: "Findings map", mapHint: "Only findings with a position (the photo's GPS, or the phone's where the photo has none); select a point to open it. Drawn offline, with no online map tiles.",
    mapCount: "{n} geotagged findings", mapEmpty: "No geotagged findings.", legendType: "Type (fill)",
    legendStatus: "Status (ring)", mapLabel: "Map of geotagged findings", north: "N",
    summaryTitle: "Summary by region", allRegions: "All regions", noRegion: "(no region)", byType: "By type",
    byStatus: "By status", rectifiedCount: "{n} rectified", medianDays: "median {d} days to rectify",
    noMedian: "none rectified yet", findingsCount: "{n} findings",
    jobsTitle: "Batch jobs", jobZip: "Zip of drone photos (.zip)", jobSubmit: "Start batch job", jobProgress: "{p} of {n} done, {f} failed",
    jobCancel: "Cancel job", jobResults: "See results", jobsRecent: "Recent jobs", jobsNone: "No batch jobs yet.",
    jobTile: "Tiled detection (small things in large photos)", jobTile_auto: "Automatic: tile large aerial photos", jobTile_on: "Always tile", jobTile_off: "Never tile (resize whole photo)",
    jobStatus_queued: "queued", jobStatus_running: "running", jobStatus_done: "done", jobStatus_cancelled: "cancelled",
    status_candidate: "candidate", status_confirmed: "confirmed", status_dismissed: "dismissed",
    status_rectification_ordered: "rectification ordered", status_rectified: "rectified", status_closed: "closed",
    navLabels: "Labels", labelsTitle: "Labels ({n})", labelsLegend: "Dashed boxes (✎) are labels people drew; solid boxes are the model's findings.",
    labelsNone: "No labels on this photo yet.", labelMode: "Label mode", labelNewBox: "New box", labelFixButton: "Fix box / type",
    labelHelp: "In label mode, drag on the photo to draw a box; drag the box or its corners to move or resize it, drag elsewhere to re-draw it. Keyboard: “New box”, then arrow keys move it and Ctrl+arrow keys resize it (hold Shift for larger steps), Enter goes on to the type, Esc cancels; or type the coordinates.",
    labelNew: "New label", labelEdit: "Edit label #{id}", labelFix: "Fix finding #{id}", labelChooseType: "Choose a problem type",
    typesDetectable: "The model detects", typesNotDetectable: "Not detected by the model yet", labelBoxPx: "Box (pixels of the {w}×{h} photo)",
    labelNote: "Note (optional)", labelSave: "Save label", labelCancel: "Cancel", labelEditButton: "Edit", labelDelete: "Delete",
    labelDeleteConfirm: "Delete this label?", labelDeleteYes: "Delete it", labelDeleteNo: "Keep",
    labelSaved: "Label #{id} saved", labelDeleted: "Label #{id} deleted", labelNeedType: "Choose a problem type first.",
    labelBadCoords: "Coordinates must be numbers.", labelBoxAt: "Label box {x1},{y1} – {x2},{y2}",
    source: "Source", source_manual: "drawn", source_correction: "correction", source_label_studio: "Label Studio import",
    labelsScreen: "Labels", labelsTotal: "{n} labels", labelsPerType: "Training data per type", positives: "Boxes",
    hardNegatives: "Negatives (dismissed)", photosCount: "Photos", reviewedImages: "{n} reviewed photos", detectable: "Model",
    exportsTitle: "Export and import", exportYolo: "Export YOLO dataset (zip)", exportLabelStudio: "Export Label Studio tasks (JSON)",
    imagePrefix: "Label Studio image URL prefix (optional)", importFile: "Label Studio export file (JSON)", importSubmit: "Import",
    importResult: "{c} created, {u} updated, {n} unchanged, {s} skipped", importBadFile: "Not a valid JSON file.", labelsListTitle: "All labels",
    labelBox: "Box", labelBy: "By", photoTitle: "Photo #{id}", labelsOfPhoto: "Open photo #{id}", noneLabels: "No labels match.",
    navBulletin: "Bulletin", bulletinTitle: "Weekly bulletin", bulletinChoose: "Choose the bulletin", bulletinPeriod: "Week", bulletinTownship: "Township (optional; empty: the county)",
    bulletinShow: "Make bulletin", bulletinPick: "Choose a week and a county to make the bulletin.", bulletinMeta: "{first} to {last} ({zone}), counted up to {asOf}",
    bulletinPrintable: "Download printable page (HTML, A4)", exportXlsx: "Export Excel", bulletinEmpty: "No problem was raised, rectified or overdue here in this period.",
    bulletinNewTitle: "1. New problems", bulletinRectTitle: "2. Rectification", bulletinRecTitle: "3. Recurrences", bulletinRanking: "4. Township ranking",
    bulletinPhotos: "5. Typical photos", bulletinNew: "{n} new problems this period.", bulletinAwaiting: "{n} more candidates await review and are not counted.",
    bulletinNoTownship: "(no township)", bulletinTotal: "Total", bulletinRectifiedAt: "Rectified at",
    bulletinRectified: "{o} rectified on time, {l} late, {d} still overdue.", bulletinLateList: "Rectified late", bulletinOverdueList: "Still overdue",
    bulletinRecurrences: "{n} recurrences this period.", bulletinNewlyRanked: "new", bulletinNoRanking: "No township to rank.", bulletinNoPhotos: "No photos this period.",
    rank: "Rank", rankScore: "Score", rankChange: "Change", rankProblems: "New problems", rankVillages: "Villages", rankPerVillage: "Per village",
    rankOnTime: "On time", rankLate: "Late", rankOverdue: "Overdue", rankRate: "On-time rate", rankRecurrences: "Recurrences",
    rankFormula: "Score = {a} × on-time rate − {b} × problems per village − {c} × overdue − {d} × recurrences; on-time rate = on time ÷ (on time + late + overdue), 100% with none. Equal scores share a rank.",
    deadline: "Deadline", deadlineField: "Deadline (optional)", deadlineHelp: "Empty: the problem type's default number of days.", overdue: "overdue", rectifiedLate: "rectified late",
    recurrence: "recurrence", recurrenceOf: "Recurrence of", filterOverdue: "Overdue", filterRecurrence: "Recurrence", yes: "yes", no: "no",
    overdueCount: "{n} overdue", lateCount: "{n} rectified late",
    navQueue: "Queue", cameraHint: "Take a photo (phone camera)", keptHint: "Photos are kept on this device first and go out by themselves when the server can be reached: keep taking them without a signal.",
    queueLink: "See the queue", keptHere: "Kept on this device, waiting to be sent", waitingForServer: "Waiting for the server", locating: "Getting the phone's position…",
    keptCount: "{n} photos kept on this device", unreachable: "The server cannot be reached (no network, or it is down)",
    refused_empty: "Empty file", refused_too_large: "File too large", refused_invalid_image: "Not a usable photo", refused_request_too_large: "File too large",
    positionNone: "No phone position (the photo's own GPS is used if it has one)", positionDevice: "Phone position {where} (±{m} m); the photo's own GPS wins if it has one",
    queueTitle: "Photos on this device", queueHelp: "Photos taken or chosen here are kept on this device first (closing the page or restarting the phone loses nothing) and go out one by one by themselves when the server can be reached, each scored once. A photo the server refuses says why and can be deleted. Signing out keeps them; they go out after the next sign-in.",
    queueSendNow: "Send now", queueClearSent: "Clear sent", queueCounts: "{w} waiting · {s} sent · {f} refused",
    queueOffline: "Offline: photos go out by themselves once there is a network.", queueSending: "Sending…", queueNextTry: "The server cannot be reached; next try in {s} s.",
    queueAllSent: "Nothing waits to be sent.", queueEmpty: "No photos on this device.", queue_waiting: "waiting", queue_sending: "sending",
    queue_sent: "sent", queue_failed: "refused", queueRefused: "Refused by the server", queueSentAt: "Sent {at}",
    queueLastTry: " ({n} tries; last: {why})", queuedAt: "kept", queueDelete: "Delete",
    queueDeleteConfirm: "Delete this unsent photo from the device?", queueDeleteYes: "Delete it", queueForget: "Remove from list", queueDeleted: "{name} deleted",
    gpsPhoto: "photo GPS", gpsDevice: "phone position, ±{m} m", legendPosition: "Position from", mapPhotoGps: "photo GPS (solid point)",
    mapDevice: "phone position (dashed circle: its accuracy)", keepFailed: "The photo could not be kept on this device (storage full?) and was not sent: {why}",
  },
};

export const STATUSES = ["candidate", "confirmed", "dismissed", "rectification_ordered", "rectified", "closed"];

let current = STRINGS[localStorage.getItem(STORAGE_KEY)] ? localStorage.getItem(STORAGE_KEY) : "zh-CN";
let taxonomy = [];

export function lang() {
  return current;
}

export function setLang(code) {
  current = code;
  localStorage.setItem(STORAGE_KEY, code);
  document.documentElement.lang = code;
}

/** The string `key` in the current language with {name} placeholders filled from `vars`. */
export function t(key, vars = {}) {
  const text = STRINGS[current][key] ?? STRINGS["zh-CN"][key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

/** Problem types as served by GET /v1/model: [{key, name_zh, name_en, detectable}]. */
export function setTaxonomy(problemTypes) {
  taxonomy = problemTypes;
}

export function problemTypes() {
  return taxonomy;
}

/** A problem type's name in the current language (its key when the taxonomy is unknown). */
export function typeName(key) {
  const found = taxonomy.find((p) => p.key === key);
  if (!found) return key;
  return current === "en" ? found.name_en : found.name_zh;
}

/** Both names, Chinese first, as the issue asks for in upload results. */
export function typeNames(key) {
  const found = taxonomy.find((p) => p.key === key);
  return found ? { zh: found.name_zh, en: found.name_en } : { zh: key, en: key };
}

export function statusName(status) {
  return t(`status_${status}`);
}

/** A date and time for people; in `timeZone` (the offices', as a bulletin gives it) or the browser's. */
export function formatTime(iso, timeZone = undefined) {
  if (!iso) return "–";
  return new Intl.DateTimeFormat(current, { dateStyle: "medium", timeStyle: "short", timeZone }).format(new Date(iso));
}

export function formatScore(score) {
  return Number(score).toFixed(2);
}
