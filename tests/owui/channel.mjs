// Taken from Open WebUI (yshishenya/open-webui, a fork of open-webui/open-webui) at commit
// 65ebc7c732c2c9bd04e3ddbcd7ef068a99d25af1, file src/lib/components/channel/Channel.svelte:
//   the page's state (lines 30-45), scrollToBottom, updateLastReadAt (51-77), initHandler,
//   channelEventHandler, submitHandler, onChange (100-264), and the socket lines of
//   onMount (270-274) and onDestroy (290-295).
// Their bodies are unchanged (copied by line range). Around them: svelte stores are the
// plain stores of runtime.mjs with `$name` kept up to date by subscriptions; the backend
// API (getChannelById, getChannelMessages, sendMessage), toast and goto are the recorders
// of runtime.mjs. The page is /channels/<id>; the message list element is a stand-in
// object. A message sent is a POST to Open WebUI's backend (recorded as the api call
// sendMessage, with its temp_id), whose answer reaches every member as `events:channel`.
import { observedSocket, tick, uuidv4 } from './runtime.mjs';

export function mountChannel(ctx) {
	const { stores, api, toast, goto, localStorage, report } = ctx;
	const { chatId, channels, socket, user } = stores;
	const _channelId = stores.channelId;
	const { getChannelById, getChannelMessages, sendMessage } = api;

	let $chatId, $channels, $socket, $user;
	chatId.subscribe((v) => ($chatId = v));
	channels.subscribe((v) => ($channels = v));
	user.subscribe((v) => ($user = v));
	// what the page shows, after each event it handled
	const snapshot = () => ({
		channel_id: id,
		typing_users: typingUsers,
		messages: (messages ?? []).map((m) => ({
			id: m.id,
			temp_id: m.temp_id ?? null,
			content: m.content,
			user_id: m.user_id ?? m.user?.id ?? null
		}))
	});
	socket.subscribe((v) => ($socket = v && observedSocket(v, 'channel', snapshot, report)));

	let id = ctx.channelId; // export let id

	// -- src/lib/components/channel/Channel.svelte -------------------------------------
	let currentId = null;

	let scrollEnd = true;
	let messagesContainerElement = null;
	let chatInputElement = null;

	let top = false;

	let channel = null;
	let messages = null;

	let replyToMessage = null;
	let threadId = null;

	let typingUsers = [];
	let typingUsersTimeout = {};

	const scrollToBottom = () => {
		if (messagesContainerElement) {
			messagesContainerElement.scrollTop = messagesContainerElement.scrollHeight;
		}
	};

	const updateLastReadAt = async (channelId) => {
		$socket?.emit('events:channel', {
			channel_id: channelId,
			message_id: null,
			data: {
				type: 'last_read_at'
			}
		});

		channels.set(
			$channels.map((channel) => {
				if (channel.id === channelId) {
					return {
						...channel,
						unread_count: 0
					};
				}
				return channel;
			})
		);
	};

	const initHandler = async () => {
		if (currentId) {
			updateLastReadAt(currentId);
		}

		currentId = id;
		updateLastReadAt(id);
		_channelId.set(id);

		top = false;
		messages = null;
		channel = null;
		threadId = null;

		typingUsers = [];
		typingUsersTimeout = {};

		channel = await getChannelById(localStorage.token, id).catch((error) => {
			return null;
		});

		if (channel) {
			messages = await getChannelMessages(localStorage.token, id, 0);

			if (messages) {
				scrollToBottom();

				if (messages.length < 50) {
					top = true;
				}
			}
		} else {
			goto('/');
		}
	};

	const channelEventHandler = async (event) => {
		if (event.channel_id === id) {
			const type = event?.data?.type ?? null;
			const data = event?.data?.data ?? null;

			if (type === 'message') {
				if ((data?.parent_id ?? null) === null) {
					const tempId = data?.temp_id ?? null;
					messages = [
						{ ...data, temp_id: null },
						...messages.filter((m) => !tempId || m?.temp_id !== tempId)
					];

					if (typingUsers.find((user) => user.id === event.user.id)) {
						typingUsers = typingUsers.filter((user) => user.id !== event.user.id);
					}

					await tick();
					if (scrollEnd) {
						scrollToBottom();
					}
				}
			} else if (type === 'message:update') {
				const idx = messages.findIndex((message) => message.id === data.id);

				if (idx !== -1) {
					messages[idx] = data;
				}
			} else if (type === 'message:delete') {
				messages = messages.filter((message) => message.id !== data.id);

				if (threadId === data.id) {
					threadId = null;
				}
			} else if (type === 'message:reply') {
				const idx = messages.findIndex((message) => message.id === data.id);

				if (idx !== -1) {
					messages[idx] = data;
				}
			} else if (type.includes('message:reaction')) {
				const idx = messages.findIndex((message) => message.id === data.id);
				if (idx !== -1) {
					messages[idx] = data;
				}
			} else if (type === 'typing' && event.message_id === null) {
				if (event.user.id === $user?.id) {
					return;
				}

				typingUsers = data.typing
					? [
							...typingUsers,
							...(typingUsers.find((user) => user.id === event.user.id)
								? []
								: [
										{
											id: event.user.id,
											name: event.user.name
										}
									])
						]
					: typingUsers.filter((user) => user.id !== event.user.id);

				if (typingUsersTimeout[event.user.id]) {
					clearTimeout(typingUsersTimeout[event.user.id]);
				}

				typingUsersTimeout[event.user.id] = setTimeout(() => {
					typingUsers = typingUsers.filter((user) => user.id !== event.user.id);
				}, 5000);
			}
		}
	};

	const submitHandler = async ({ content, data }) => {
		if (!content && (data?.files ?? []).length === 0) {
			return;
		}

		const tempId = uuidv4();

		const message = {
			temp_id: tempId,
			content: content,
			data: data,
			reply_to_id: replyToMessage?.id ?? null
		};

		const ts = Date.now() * 1000000; // nanoseconds
		messages = [
			{
				...message,
				id: tempId,
				user_id: $user?.id,
				user: $user,
				reply_to_message: replyToMessage ?? null,
				created_at: ts,
				updated_at: ts
			},
			...messages
		];

		const res = await sendMessage(localStorage.token, id, message).catch((error) => {
			toast.error(`${error}`);
			return null;
		});

		if (res) {
			messagesContainerElement.scrollTop = messagesContainerElement.scrollHeight;
		}

		replyToMessage = null;
	};

	const onChange = async () => {
		$socket?.emit('events:channel', {
			channel_id: id,
			message_id: null,
			data: {
				type: 'typing',
				data: {
					typing: true
				}
			}
		});

		updateLastReadAt(id);
	};

	const mount = async () => {
		// $: if (id) { initHandler(); } runs first, onMount while it loads
		const loaded = initHandler();
		if ($chatId) {
			chatId.set('');
		}

		$socket?.on('events:channel', channelEventHandler);
		await loaded;
	};

	const destroy = () => {
		// onDestroy
		// last read at
		updateLastReadAt(id);
		_channelId.set(null);
		$socket?.off('events:channel', channelEventHandler);
	};

	// what the user does: types in the message input (its onChange), or sends a message
	const type = () => onChange();
	const send = (content) => {
		messagesContainerElement = { scrollTop: 0, scrollHeight: 0 }; // bound once rendered
		return submitHandler({ content, data: {} });
	};

	return { mount, destroy, type, send, snapshot };
}
