// The workspace's words in English and Simplified Chinese; the choice is kept in localStorage.
export type Lang = 'en' | 'zh-CN';

const en = {
  title: 'cc workspace', signIn: 'Sign in', user: 'User name', password: 'Password', signOut: 'Sign out', language: 'Language',
  presence: 'Presence', available: 'Available', away: 'Away', offline: 'Offline', busy: 'Busy', wrapup: 'Wrap-up',
  inbox: 'Inbox', wallboard: 'Wallboard', reports: 'Reports', offers: 'Offers', accept: 'Accept (a)', reject: 'Reject',
  expiresIn: 'expires in {s} s', noConversations: 'No conversations', unread: 'unread', slaIn: 'reply within {s} s', slaBreached: 'SLA breached',
  pick: 'Pick a conversation from the inbox', reply: 'Reply', replyLabel: 'Reply to the customer', send: 'Send', attach: 'Attach a file', canned: 'Canned response', none: '(none)',
  transfer: 'Transfer (t)', transferTo: 'Transfer to', note: 'Note for the next agent', cancel: 'Cancel', confirm: 'Confirm',
  wrapUp: 'Wrap up', disposition: 'Disposition', call: 'Start a voice call', profile: 'Profile', identities: 'Identities', tags: 'Tags', history: 'History across channels',
  queues: 'Queues', agents: 'Agents', channels: 'Channels', waiting: 'Waiting', longestWait: 'Longest wait (s)', serviceLevel: 'Service level %', load: 'Load', active: 'Active',
  from: 'From', to: 'To', show: 'Show', answerRate: 'Answer rate %', firstResponse: 'First response (s)', handleTime: 'Average handle time (s)', csat: 'CSAT (1-5)', ratings: 'Ratings', notCollected: 'not collected',
  channel: 'Channel', conversations: 'Conversations', queue: 'Queue', agent: 'Agent', state: 'State', error: 'Error', shortcuts: 'Shortcuts: a accept, r reply, t transfer', delivery: 'delivery',
  queued: 'queued', sent: 'sent', delivered: 'delivered', read: 'read', failed: 'failed', reconnecting: 'Reconnecting…',
  voiceCall: 'Voice call', answerCall: 'Answer', mute: 'Mute', unmute: 'Unmute', hold: 'Hold', resume: 'Resume', hangUp: 'Hang up', keypad: 'Keypad', pressKey: 'Key {key}',
  callIdle: 'Not connected', callJoining: 'Connecting…', callLive: 'Connected', callHeld: 'On hold', callAudio: 'audio packets in {in}, out {out}',
  consult: 'Consult…', consultWith: 'Consult with', consultNote: 'Note for your colleague', startConsult: 'Start consult', completeTransfer: 'Complete transfer', cancelConsult: 'Cancel consult',
  consultInvited: 'Waiting for {agent} to join; the caller hears music', consultTalking: 'Talking with {agent}; the caller hears music', consultDeclined: '{agent} declined the consult', consultEnded: 'The consult ended',
  consultInvites: 'Consult requests', consultInvite: '{agent} wants to consult you about a call', join: 'Join', decline: 'Decline', leaveConsult: 'Leave consult', consultPeerAudio: 'colleague audio packets {in}',
  offerExpired: 'Offer expired', inWrapup: 'In wrap-up', wrapUpHint: 'Choose a disposition to close this conversation.', closeWith: 'Close with this disposition', ready: 'Ready',
  removeFile: 'Remove {name}', uploading: 'Uploading {name}…',
  outreach: 'New conversation', outreachTitle: 'Open a conversation on another channel', via: 'Channel and address', message: 'Message', outreachDone: 'Conversation {id} opened: {note}', noAddress: 'This customer has no known address to write to.',
  users: 'Users', userId: 'User id', name: 'Name', role: 'Role', roles_agent: 'Agent', roles_supervisor: 'Supervisor', roles_admin: 'Administrator', queuesField: 'Queues (comma-separated)', skills: 'Skills (e.g. en:2, zh:1)', initialPassword: 'Initial password (at least 10 characters)',
  createUser: 'Create user', disabled: 'Disabled', enabled: 'Active', disable: 'Disable', enable: 'Enable', delete: 'Delete', confirmDelete: 'Delete user {id}? This cannot be undone.', saved: 'Saved', status: 'Status', actions: 'Actions', changeRoleOf: 'Role of {id}',
  cannedAdmin: 'Canned responses', cannedId: 'Short id', cannedTitle: 'Title', cannedText: 'Text', cannedLang: 'Language', anyLang: 'Any', add: 'Add', period: 'Period',
};
const zh: typeof en = {
  title: 'cc 坐席工作台', signIn: '登录', user: '用户名', password: '密码', signOut: '退出', language: '语言',
  presence: '状态', available: '就绪', away: '离开', offline: '离线', busy: '忙碌', wrapup: '话后处理',
  inbox: '收件箱', wallboard: '监控大屏', reports: '报表', offers: '待接会话', accept: '接受 (a)', reject: '拒绝',
  expiresIn: '{s} 秒后过期', noConversations: '暂无会话', unread: '未读', slaIn: '请在 {s} 秒内回复', slaBreached: '已超时',
  pick: '请从收件箱选择一个会话', reply: '回复', replyLabel: '回复客户', send: '发送', attach: '添加附件', canned: '快捷回复', none: '（无）',
  transfer: '转接 (t)', transferTo: '转接给', note: '给下一位坐席的备注', cancel: '取消', confirm: '确定',
  wrapUp: '结束会话', disposition: '处理结果', call: '发起语音通话', profile: '客户资料', identities: '渠道身份', tags: '标签', history: '跨渠道历史',
  queues: '队列', agents: '坐席', channels: '渠道', waiting: '排队中', longestWait: '最长等待（秒）', serviceLevel: '服务水平 %', load: '负载', active: '处理中',
  from: '开始', to: '结束', show: '查询', answerRate: '接通率 %', firstResponse: '首次响应（秒）', handleTime: '平均处理时长（秒）', csat: '满意度（1-5）', ratings: '评价数', notCollected: '未收集',
  channel: '渠道', conversations: '会话数', queue: '队列', agent: '坐席', state: '状态', error: '错误', shortcuts: '快捷键：a 接受，r 回复，t 转接', delivery: '送达',
  queued: '排队', sent: '已发送', delivered: '已送达', read: '已读', failed: '失败', reconnecting: '正在重新连接…',
  voiceCall: '语音通话', answerCall: '接听', mute: '静音', unmute: '取消静音', hold: '保持', resume: '恢复', hangUp: '挂断', keypad: '拨号键盘', pressKey: '按键 {key}',
  callIdle: '未接通', callJoining: '正在连接…', callLive: '通话中', callHeld: '保持中', callAudio: '音频包 收 {in}，发 {out}',
  consult: '咨询…', consultWith: '咨询对象', consultNote: '给同事的备注', startConsult: '开始咨询', completeTransfer: '完成转接', cancelConsult: '取消咨询',
  consultInvited: '等待 {agent} 加入，来电者正在听等待音乐', consultTalking: '正在与 {agent} 通话，来电者正在听等待音乐', consultDeclined: '{agent} 拒绝了咨询', consultEnded: '咨询已结束',
  consultInvites: '咨询请求', consultInvite: '{agent} 想就一通来电向您咨询', join: '加入', decline: '拒绝', leaveConsult: '退出咨询', consultPeerAudio: '同事音频包 {in}',
  offerExpired: '已过期', inWrapup: '话后处理中', wrapUpHint: '选择处理结果以结束此会话。', closeWith: '按此处理结果结束', ready: '就绪',
  removeFile: '移除 {name}', uploading: '正在上传 {name}…',
  outreach: '发起新会话', outreachTitle: '在其他渠道发起会话', via: '渠道与地址', message: '消息', outreachDone: '已发起会话 {id}：{note}', noAddress: '该客户没有可联系的地址。',
  users: '用户', userId: '用户 ID', name: '姓名', role: '角色', roles_agent: '坐席', roles_supervisor: '班长', roles_admin: '管理员', queuesField: '队列（逗号分隔）', skills: '技能（如 en:2, zh:1）', initialPassword: '初始密码（至少 10 个字符）',
  createUser: '创建用户', disabled: '已停用', enabled: '启用中', disable: '停用', enable: '启用', delete: '删除', confirmDelete: '删除用户 {id}？此操作无法撤销。', saved: '已保存', status: '状态', actions: '操作', changeRoleOf: '{id} 的角色',
  cannedAdmin: '快捷回复', cannedId: '短 ID', cannedTitle: '标题', cannedText: '内容', cannedLang: '语言', anyLang: '不限', add: '添加', period: '时间段',
};
export const STRINGS: Record<Lang, typeof en> = { en, 'zh-CN': zh };
export type Words = typeof en;

export function initialLang(): Lang {
  const saved = localStorage.getItem('cc.lang');
  if (saved === 'en' || saved === 'zh-CN') return saved;
  return navigator.language.startsWith('zh') ? 'zh-CN' : 'en';
}

export const fill = (s: string, vars: Record<string, string | number>) => s.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ''));
export const CHANNEL_ICONS: Record<string, string> = { webchat: '💬', app: '📱', email: '✉️', sms: '📨', voice: '📞', wecom: '🏢', dingtalk: '🔔', wechat: '🟩', douyin: '🎵', xiaohongshu: '📕' };
