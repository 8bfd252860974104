include $(sort $(wildcard $(BR2_EXTERNAL_DASHVAULT_PATH)/package/*/*.mk))
